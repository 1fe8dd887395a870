// seek serve under mpiexec (expert parallelism: rank 0 serves HTTP and schedules, the other ranks repeat
// its steps with their share of the experts) against the same model in one process: the same answers
// for greedy and seeded sampled requests, streamed or not, with logprobs, n, stop strings and drafts;
// context caching (the rows rank 0 restores reach the followers); many requests at once and a client
// that disconnects mid-stream keep the ranks in step; SIGTERM ends every rank cleanly; a rank that dies
// ends the job instead of leaving it hanging.
//   SEEK_MPIEXEC  the MPI launcher (CTest passes MPICH's)   SEEK_RANKS  ranks (default 2)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import OpenAI from "openai";
import { startServer, chatBody } from "./common.mjs";

const MPIEXEC = process.env.SEEK_MPIEXEC || "mpiexec";
const RANKS = String(process.env.SEEK_RANKS || 2);
const launcher = [MPIEXEC, "-n", RANKS];
let one, many;  // the one-process server and the expert-parallel one
const client = (s) => new OpenAI({ baseURL: s.url + "/v1", apiKey: "unused", maxRetries: 0 });

before(async () => {
  one = await startServer();
  many = await startServer([], launcher);
  assert.match(many.log(), new RegExp(`experts spread over MPI, ${RANKS} ranks`));
});
after(async () => {
  if (one) await one.stop();
  if (many) await many.stop();
});

// What must be equal: every choice's text, finish reason, tokens and logprobs, and the usage.
async function answer(s, body) {
  const r = await client(s).chat.completions.create(body);
  if (!body.stream)
    return { choices: r.choices.map((c) => ({ text: c.message.content, finish: c.finish_reason, lp: c.logprobs })), usage: r.usage };
  let text = "", finish = null, usage = null;
  for await (const chunk of r) {
    for (const c of chunk.choices) {
      text += c.delta?.content ?? "";
      finish = c.finish_reason ?? finish;
    }
    usage = chunk.usage ?? usage;
  }
  return { choices: [{ text, finish }], usage };
}

// Equal, except log-probabilities: the experts' outputs are summed in another order across ranks, so
// the logits differ in their last bits (the logits test in tests/mpi bounds them by 1e-5 of the largest);
// the tokens, and so the texts, must not.
function assertSame(actual, expected, what, key = "") {
  if (key === "logprob") return assert.ok(Math.abs(actual - expected) <= 1e-4, `${what}: logprob ${actual} vs ${expected}`);
  if (expected === null || typeof expected !== "object") return assert.equal(actual, expected, `${what}: ${key}`);
  assert.equal(typeof actual, "object", `${what}: ${key}`);
  assert.deepEqual(Object.keys(actual ?? {}).sort(), Object.keys(expected).sort(), `${what}: ${key}`);
  for (const k of Object.keys(expected)) assertSame(actual[k], expected[k], what, k);
}

const requests = {
  greedy: chatBody({ max_tokens: 24 }),
  sampled: chatBody({ max_tokens: 24, temperature: 0.8, seed: 7 }),
  streamed: chatBody({ max_tokens: 24, temperature: 0.9, top_p: 0.9, seed: 11, stream: true, stream_options: { include_usage: true } }),
  n: chatBody({ max_tokens: 12, temperature: 1, seed: 3, n: 3 }),
  logprobs: chatBody({ max_tokens: 8, logprobs: true, top_logprobs: 3 }),
  stop: chatBody({ max_tokens: 24, stop: ["e"] }),
  drafts: chatBody({ max_tokens: 24, draft_tokens: 2 }),
  penalties: chatBody({ max_tokens: 16, temperature: 0.7, seed: 5, frequency_penalty: 0.5, presence_penalty: 0.3, logit_bias: { 5: 3 } }),
};

test("the expert-parallel server answers what one process answers", async () => {
  for (const [name, body] of Object.entries(requests)) {
    const a = await answer(one, body), b = await answer(many, body);
    assertSame(b, a, name);
  }
});

test("context caching: a repeated long prompt is restored on rank 0 and computed the same on every rank", async () => {
  const body = chatBody({
    max_tokens: 16,
    messages: [{ role: "user", content: "A long question, to fill several blocks of the prefix cache: ".repeat(6) + "what is MLA?" }],
  });
  const first = await answer(many, body), again = await answer(many, body);
  assert.equal(first.usage.prompt_cache_hit_tokens, 0);
  assert.ok(again.usage.prompt_cache_hit_tokens > 0, JSON.stringify(again.usage));
  assertSame(again.choices, first.choices, "restored");
  assertSame((await answer(one, body)).choices, first.choices, "one process");
});

test("many requests at once and a client that leaves mid-stream keep the ranks in step", async () => {
  const aborter = new AbortController();
  const leaving = client(many).chat.completions.create(chatBody({ max_tokens: 200, stream: true }), { signal: aborter.signal });
  const jobs = [];
  for (let i = 0; i < 24; ++i)
    jobs.push(answer(many, chatBody({ max_tokens: 6 + (i % 5), temperature: 0.8, seed: i, stream: i % 2 === 0 })));
  const stream = await leaving;
  for await (const _ of stream) { aborter.abort(); break; }
  const all = await Promise.all(jobs);
  for (const r of all) assert.ok(["stop", "length"].includes(r.choices[0].finish), JSON.stringify(r));
  // Still in step: a greedy answer equal to the one process's.
  assertSame(await answer(many, requests.greedy), await answer(one, requests.greedy), "after");
});

test("SIGTERM stops every rank cleanly", async () => {
  const code = await many.stop();
  many = null;
  assert.equal(code, 0);
});

// The ranks of a server started under mpiexec: the processes below it whose environment says PMI_RANK.
function ranksOf(pid) {
  const found = {};
  const walk = (p) => {
    for (const child of fs.readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) {
      const env = fs.readFileSync(`/proc/${child}/environ`, "utf8").split("\0");
      const rank = env.find((e) => e.startsWith("PMI_RANK="));
      if (rank) found[rank.slice(9)] = Number(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

test("a rank that dies ends the job, not a hang", async () => {
  const s = await startServer([], launcher);
  const ranks = ranksOf(s.proc.pid);
  assert.ok(ranks["1"], "rank 1's process: " + JSON.stringify(ranks));
  const ended = new Promise((res) => s.proc.once("exit", (code, sig) => res(code ?? sig)));
  process.kill(ranks["1"], "SIGKILL");
  const code = await Promise.race([ended, new Promise((res) => setTimeout(() => res("still running"), 15000))]);
  if (code === "still running") s.proc.kill("SIGKILL");
  assert.notEqual(code, "still running");
  assert.notEqual(code, 0);
});
