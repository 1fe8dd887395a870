// bench_speculative.mjs — the server's throughput with and without MTP drafts (speculative decoding) at
// 1, 4 and 16 concurrent streams. A benchmark, never a test.
//
//   node tests/server/bench_speculative.mjs --seek build/seek --model DIR [--streams 1,4,16] [--rounds 2]
//        [--max-tokens 200] [--serve-args "--draft-max-seqs 16"]
//
// One `seek serve` of the model; every stream asks one arithmetic question through
// /v1/chat/completions, greedy, with reasoning on (worked answers, a few hundred tokens). Per stream
// count, rounds alternate between requests with "draft_tokens": 0 and requests that leave drafting to
// the server (its defaults, including the gate that stops drafting in larger batches). Prints, per
// round, the aggregate output tokens/s of each; then the medians and the server's draft counters.
import { spawn } from "node:child_process";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const SEEK = args.seek || "build/seek";
const MODEL = args.model;
if (!MODEL) throw new Error("--model DIR is required");
const STREAMS = (args.streams || "1,4,16").split(",").map(Number);
const ROUNDS = Number(args.rounds || 2);
const MAX_TOKENS = Number(args["max-tokens"] || 200);
const EXTRA = (args["serve-args"] || "").split(" ").filter((s) => s);

function start() {
  const proc = spawn(SEEK, ["serve", "-m", MODEL, "--port", "0", "--name", "bench", "--max-seqs", "16", "--no-cache", ...EXTRA],
                     { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  return new Promise((resolve, reject) => {
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^ ]+)/);
      if (m && out.includes("ready")) resolve({ url: m[1], proc });
    });
    proc.once("exit", (c) => reject(new Error("seek serve exited " + c + "\n" + out)));
  });
}

function question(i) {
  let x = (i * 2654435761 + 12345) >>> 0;
  const next = (m) => { x = (x * 1103515245 + 12345) >>> 0; return x % m; };
  const op = ["+", "-", "*"][next(3)];
  return op === "*" ? `What is ${10 + next(900)} * ${2 + next(98)}?` : `What is ${100 + next(9000)} ${op} ${10 + next(900)}?`;
}

async function ask(url, i, drafts) {
  const body = { model: "bench", messages: [{ role: "user", content: question(i) }], max_tokens: MAX_TOKENS,
                 temperature: 0, thinking: { type: "enabled" } };
  if (!drafts) body.draft_tokens = 0;
  const r = await fetch(url + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
                                                          body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  return (await r.json()).usage.completion_tokens;
}

const metrics = async (url) => Object.fromEntries((await (await fetch(url + "/metrics")).text()).split("\n")
  .filter((l) => l && !l.startsWith("#")).map((l) => { const [k, v] = l.split(" "); return [k, Number(v)]; }));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

const server = await start();
try {
  await ask(server.url, 0, true);  // warm-up
  console.log(`model ${MODEL}, serve args [${EXTRA.join(" ")}], ${ROUNDS} rounds, greedy, up to ${MAX_TOKENS} tokens`);
  for (const n of STREAMS) {
    const rates = { plain: [], drafts: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of ["plain", "drafts"]) {
        const m0 = await metrics(server.url);
        const t0 = performance.now();
        const tokens = (await Promise.all(Array.from({ length: n }, (_, i) => ask(server.url, 1000 * n + i, mode === "drafts"))))
          .reduce((a, b) => a + b, 0);
        const wall = (performance.now() - t0) / 1000;
        const m1 = await metrics(server.url);
        rates[mode].push(tokens / wall);
        const drafted = m1.seek_draft_tokens_total - m0.seek_draft_tokens_total;
        const accepted = m1.seek_draft_accepted_tokens_total - m0.seek_draft_accepted_tokens_total;
        const steps = m1.seek_decode_steps_total - m0.seek_decode_steps_total;
        const stepTokens = m1.seek_decode_step_tokens_total - m0.seek_decode_step_tokens_total;
        console.log(`streams ${n} round ${r + 1} ${mode}: ${tokens} tokens in ${wall.toFixed(2)} s, ${(tokens / wall).toFixed(1)} tokens/s; ` +
                    `drafts ${drafted}, accepted ${drafted ? (100 * accepted / drafted).toFixed(1) : "-"}%, ` +
                    `${(stepTokens / Math.max(1, steps)).toFixed(2)} tokens a step per sequence`);
      }
    }
    console.log(`streams ${n}: median ${median(rates.plain).toFixed(1)} tokens/s without drafts, ` +
                `${median(rates.drafts).toFixed(1)} with the server's drafting, ${(median(rates.drafts) / median(rates.plain)).toFixed(2)}x`);
  }
} finally {
  server.proc.kill("SIGTERM");
}
