// seek serve against the official `openai` npm client: non-streaming and streaming chat, text
// completions, DeepSeek's usage fields, context caching across requests and restarts (with a corrupted
// cache file), errors as the client's typed exceptions, and bad input sent raw (malformed JSON, invalid
// UTF-8, wrong types, huge bodies, disconnects mid-stream, many connections at once).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { spawnSync } from "node:child_process";
import { startServer, chatBody, WORK, MODEL, MODEL_NAME, SEEK } from "./common.mjs";

const cacheDir = path.join(WORK, "openai-cache");
fs.rmSync(cacheDir, { recursive: true, force: true });
let server, client;

before(async () => {
  server = await startServer(["--cache-dir", cacheDir]);
  client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
});
after(async () => { if (server) await server.stop(); });

function checkUsage(u) {
  for (const k of ["prompt_tokens", "completion_tokens", "total_tokens", "prompt_cache_hit_tokens", "prompt_cache_miss_tokens"])
    assert.equal(typeof u[k], "number", k);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.equal(u.prompt_cache_hit_tokens + u.prompt_cache_miss_tokens, u.prompt_tokens);
  assert.equal(u.prompt_tokens_details.cached_tokens, u.prompt_cache_hit_tokens);
  assert.equal(typeof u.completion_tokens_details.reasoning_tokens, "number");
}

test("models and health; no -m asks for a model", async () => {
  const models = await client.models.list();
  assert.ok(models.data.some((m) => m.id === MODEL_NAME));
  assert.equal((await client.models.retrieve(MODEL_NAME)).id, MODEL_NAME);
  await assert.rejects(client.models.retrieve("nope"), (e) => e instanceof OpenAI.NotFoundError);
  // Without -m: the shipped default model when the repository has one, else a clear request for -m.
  const shipped = new URL("../../models/seek-tiny/config.json", import.meta.url);
  if (!fs.existsSync(shipped)) {
    const r = spawnSync(SEEK, ["serve"], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /pass -m DIR/);
  }
  const h = await fetch(server.url + "/health");
  assert.equal(h.status, 200);
});

test("chat: non-streaming, then the same request hits the cache with the same answer", async () => {
  const body = chatBody({ messages: [{ role: "user", content: "Tell me about context caching, cache hits and misses." }] });
  const a = await client.chat.completions.create(body);
  assert.equal(a.object, "chat.completion");
  assert.equal(a.choices[0].message.role, "assistant");
  assert.equal(typeof a.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(a.choices[0].finish_reason));
  checkUsage(a.usage);
  assert.equal(a.usage.prompt_cache_hit_tokens, 0);
  const b = await client.chat.completions.create(body);
  checkUsage(b.usage);
  assert.ok(b.usage.prompt_cache_hit_tokens > 0, JSON.stringify(b.usage));
  assert.equal(b.choices[0].message.content, a.choices[0].message.content);
});

test("chat: streaming deltas add up to the non-streaming answer; usage comes last", async () => {
  const body = chatBody({ max_tokens: 24 });
  const whole = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = "", finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks >= 3);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  checkUsage(usage);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test("chat: reasoning_content, logprobs, n, stop, seed", async () => {
  const r = await client.chat.completions.create(chatBody({ thinking: { type: "enabled" }, max_tokens: 12 }));
  assert.equal(typeof r.choices[0].message.reasoning_content, "string");
  assert.ok(r.usage.completion_tokens_details.reasoning_tokens > 0);
  const lp = await client.chat.completions.create(chatBody({ logprobs: true, top_logprobs: 3, max_tokens: 5 }));
  const content = lp.choices[0].logprobs.content;
  assert.equal(content.length, lp.usage.completion_tokens);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
  }
  const n = await client.chat.completions.create(chatBody({ n: 3, temperature: 1, seed: 5 }));
  assert.deepEqual(n.choices.map((c) => c.index), [0, 1, 2]);
  const again = await client.chat.completions.create(chatBody({ n: 3, temperature: 1, seed: 5 }));
  assert.deepEqual(again.choices.map((c) => c.message.content), n.choices.map((c) => c.message.content));
  const stopped = await client.chat.completions.create(chatBody({ stop: [n.choices[0].message.content.slice(2, 4) || "zz"], n: 1, temperature: 1, seed: 5 }));
  assert.ok(stopped.choices[0].message.content.length <= n.choices[0].message.content.length);
});

test("text completions, streaming too", async () => {
  const c = await client.completions.create({ model: MODEL_NAME, prompt: "DeepSeek-V3 is", max_tokens: 8, temperature: 0 });
  assert.equal(c.object, "text_completion");
  assert.equal(typeof c.choices[0].text, "string");
  checkUsage(c.usage);
  const s = await client.completions.create({ model: MODEL_NAME, prompt: "DeepSeek-V3 is", max_tokens: 8, temperature: 0, stream: true });
  let text = "";
  for await (const chunk of s) for (const ch of chunk.choices) text += ch.text;
  assert.equal(text, c.choices[0].text);
});

test("errors arrive as the client's typed errors", async () => {
  await assert.rejects(client.chat.completions.create(chatBody({ temperature: 7 })), (e) => e instanceof OpenAI.BadRequestError && e.status === 400);
  await assert.rejects(client.chat.completions.create(chatBody({ model: "no-such-model" })), (e) => e instanceof OpenAI.NotFoundError);
  await assert.rejects(client.chat.completions.create(chatBody({ n: 1000 })), (e) => e.status === 400 && e.param === "n");
  await assert.rejects(client.chat.completions.create(chatBody({ max_tokens: -1 })), (e) => e.status === 400);
  await assert.rejects(
    client.chat.completions.create({ model: MODEL_NAME, messages: [{ role: "assistant", content: "a", reasoning_content: "r" }] }),
    (e) => e.status === 400);
});

async function raw(body, headers = { "Content-Type": "application/json" }) {
  const r = await fetch(server.url + "/v1/chat/completions", { method: "POST", headers, body });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

test("bad input sent raw: each answered with its status, the server stays up", async () => {
  const cases = [
    ["{\"model\": ", 400],
    ["null", 400],
    [JSON.stringify({ model: MODEL_NAME, messages: "hi" }), 400],
    [JSON.stringify({ model: MODEL_NAME, messages: [{ role: "user", content: ["x"] }] }), 400],
    [JSON.stringify(chatBody({ max_tokens: 1e12 })), 400],
    [JSON.stringify(chatBody({ top_p: -1 })), 400],
    [JSON.stringify(chatBody({ stream: "yes" })), 400],
    [Buffer.concat([Buffer.from('{"model":"tiny","messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"}]}')]), 400],
    ["x".repeat(5 << 20), 413],
    [JSON.stringify(chatBody({ messages: [{ role: "user", content: "fox ".repeat(5000) }] })), 413],
  ];
  for (const [body, status] of cases) {
    const r = await raw(body);
    assert.equal(r.status, status, String(body).slice(0, 80));
    assert.equal(typeof r.json.error.message, "string");
    assert.equal(typeof r.json.error.type, "string");
  }
  const nf = await fetch(server.url + "/v1/engines");
  assert.equal(nf.status, 404);
  assert.equal((await fetch(server.url + "/health")).status, 200);
});

const metric = async (url, name) => {
  const text = await (await fetch(url + "/metrics")).text();
  const m = text.match(new RegExp("^" + name + " (\\S+)$", "m"));
  return Number(m[1]);
};

test("a client that disconnects mid-stream frees its slot", async () => {
  // A slowed engine (5 ms per step) and no end-of-sequence token: the stream would run 400 tokens.
  const s = await startServer(["--debug-step-delay-ms", "5"]);
  try {
    const c = new OpenAI({ baseURL: s.url + "/v1", apiKey: "unused", maxRetries: 0 });
    const ac = new AbortController();
    const stream = await c.chat.completions.create(
      chatBody({ max_tokens: 400, temperature: 1, stream: true, logit_bias: { 1: -100 } }), { signal: ac.signal });
    let n = 0;
    try {
      for await (const _ of stream) if (++n === 3) ac.abort();
    } catch (e) { /* the abort */ }
    assert.ok(n >= 3 && n < 50, `chunks seen: ${n}`);
    let cancelled = 0;
    for (let i = 0; i < 100 && cancelled === 0; i++) {
      cancelled = await metric(s.url, "seek_requests_cancelled_total");
      if (!cancelled) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(cancelled, 1);
    assert.ok(await metric(s.url, "seek_generated_tokens_total") < 200);
    assert.equal(await metric(s.url, "seek_running_sequences"), 0);
  } finally {
    await s.stop();
  }
});

test("many connections at once", async () => {
  const jobs = [];
  for (let i = 0; i < 40; i++)
    jobs.push(client.chat.completions.create(chatBody({ max_tokens: 6, temperature: 0.8, seed: i, stream: i % 2 === 0 })));
  const all = await Promise.all(jobs);
  assert.equal(all.length, 40);
  for (const r of all) if (r.usage) checkUsage(r.usage); else for await (const _ of r) { /* drain */ }
  assert.equal((await fetch(server.url + "/health")).status, 200);
});

test("the disk cache survives a restart; a corrupted file is ignored", async () => {
  const body = chatBody({ messages: [{ role: "user", content: "A long question about the prefix cache that lives on disk, please." }] });
  const first = await client.chat.completions.create(body);
  await server.stop();
  server = await startServer(["--cache-dir", cacheDir]);
  client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
  const again = await client.chat.completions.create(body);
  assert.ok(again.usage.prompt_cache_hit_tokens > 0, "after a restart: " + JSON.stringify(again.usage));
  assert.equal(again.choices[0].message.content, first.choices[0].message.content);
  await server.stop();
  // Flip a byte in the middle of every cache file.
  const files = fs.readdirSync(cacheDir, { recursive: true }).map((f) => path.join(cacheDir, f)).filter((f) => f.endsWith(".kv"));
  assert.ok(files.length > 0);
  for (const f of files) {
    const b = fs.readFileSync(f);
    b[b.length >> 1] ^= 0x55;
    fs.writeFileSync(f, b);
  }
  server = await startServer(["--cache-dir", cacheDir]);
  client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
  const fresh = await client.chat.completions.create(body);
  assert.equal(fresh.usage.prompt_cache_hit_tokens, 0, "corrupt blocks must not be used");
  assert.equal(fresh.choices[0].message.content, first.choices[0].message.content);
  const text = await (await fetch(server.url + "/metrics")).text();
  assert.match(text, /^seek_prefix_cache_corrupt_files_total [1-9]/m);
});

test("--api-key protects the API", async () => {
  const s = await startServer(["--api-key", "k-123"]);
  try {
    const anon = new OpenAI({ baseURL: s.url + "/v1", apiKey: "wrong", maxRetries: 0 });
    await assert.rejects(anon.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    const ok = new OpenAI({ baseURL: s.url + "/v1", apiKey: "k-123", maxRetries: 0 });
    assert.ok((await ok.models.list()).data.length > 0);
    assert.equal((await fetch(s.url + "/health")).status, 200);
  } finally {
    await s.stop();
  }
});

test("the model's generation_config.json sets a request's defaults; the request's own fields win", async () => {
  const dir = path.join(WORK, "greedy-model");
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(MODEL, dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ do_sample: false, max_new_tokens: 7 }));
  const s = await startServer([], [], dir);
  try {
    const c = new OpenAI({ baseURL: s.url + "/v1", apiKey: "unused", maxRetries: 0 });
    const body = chatBody({ seed: 9 });
    delete body.temperature;
    delete body.max_tokens;
    const byDefault = await c.chat.completions.create(body);
    const greedy = await client.chat.completions.create(chatBody({ seed: 9, temperature: 0, max_tokens: 7 }));
    assert.equal(byDefault.choices[0].message.content, greedy.choices[0].message.content);
    assert.equal(byDefault.usage.completion_tokens, 7);
    const own = await c.chat.completions.create({ ...body, temperature: 1, max_tokens: 7 });
    const sampled = await client.chat.completions.create(chatBody({ seed: 9, temperature: 1, max_tokens: 7 }));
    assert.equal(own.choices[0].message.content, sampled.choices[0].message.content);
    assert.notEqual(sampled.choices[0].message.content, greedy.choices[0].message.content, "pick another seed");
  } finally {
    await s.stop();
  }
});
