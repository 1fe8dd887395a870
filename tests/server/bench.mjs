// bench.mjs — seek serve's benchmark (not a test): starts the server on a model, then measures over
// loopback HTTP
//   1. aggregate output tokens/s with 1, 4 and 16 concurrent streams,
//   2. time to first token and server CPU time per million prompt tokens for one long prompt, on a
//      cache miss and then on a cache hit,
//   3. p50 / p99 request latency under a bounded open-loop load (Poisson arrivals at a fixed rate).
// Prompts are token ids (exact lengths); the end-of-sequence token is biased away so every stream runs
// its full length. Prints a JSON summary (and writes it with --json FILE).
//
//   node tests/server/bench.mjs --seek build/seek --model build/bench-model --tokenizer tests/data/tokenizer \
//        [--decode 32] [--prompt 2000] [--streams 1,4,16] [--load-requests 32] [--json out.json]
//        [--launcher "mpiexec -n 2"]   (the server under an MPI launcher: its experts spread over the ranks;
//                                       the CPU figures then count the launcher only and are left out)
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const SEEK = args.seek || "build/seek";
const MODEL = args.model || "build/bench-model";
const TOKENIZER = args.tokenizer || "tests/data/tokenizer";
const DECODE = Number(args.decode || 32);
const LONG = Number(args.prompt || 2000);
const STREAMS = (args.streams || "1,4,16").split(",").map(Number);
const LOAD_REQUESTS = Number(args["load-requests"] || 32);
const EOS = Number(args.eos || 1);
const CLK_TCK = 100;  // Linux USER_HZ
const LAUNCHER = (args.launcher || "").split(" ").filter(Boolean);

function ids(n, seed) {
  let x = BigInt(seed) * 0x9E3779B97F4A7C15n + 12345n;
  const out = [];
  for (let i = 0; i < n; i++) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xFFFFFFFFFFFFFFFFn;
    out.push(Number((x >> 33n) % 120000n) + 200);  // plain vocabulary ids, past the special tokens
  }
  return out;
}

function start() {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "seek-bench-cache-"));
  const serve = [SEEK, "serve", "-m", MODEL, "--tokenizer", TOKENIZER, "--port", "0", "--name", "bench",
                 "--max-seqs", "16", "--cache-dir", cacheDir];
  const cmd = [...LAUNCHER, ...serve];
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  return new Promise((resolve, reject) => {
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^ ]+)/);
      if (m && out.includes("ready")) resolve({ url: m[1], proc, cacheDir });
    });
    proc.once("exit", (c) => reject(new Error("seek serve exited " + c + "\n" + out)));
  });
}

function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;  // utime + stime
}

// One streamed completion: resolves with timings and token counts.
async function complete(url, prompt, maxTokens) {
  const t0 = performance.now();
  const r = await fetch(url + "/v1/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: "bench", prompt, max_tokens: maxTokens, temperature: 0, stream: true,
                           stream_options: { include_usage: true }, logit_bias: { [EOS]: -100 } }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = "", first = null, usage = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (first === null && j.choices.length) first = performance.now();
      if (j.usage) usage = j.usage;
    }
  }
  const t1 = performance.now();
  return { ttft: (first - t0) / 1000, total: (t1 - t0) / 1000, usage };
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };

const server = await start();
const result = { model: MODEL, launcher: LAUNCHER.join(" ") || null, decode_tokens: DECODE, cpus: os.cpus().length, throughput: [], cache: {}, load: {} };
try {
  await complete(server.url, ids(16, 999), 4);  // warm-up
  // 1. throughput
  for (const n of STREAMS) {
    const t0 = performance.now();
    const runs = await Promise.all(Array.from({ length: n }, (_, i) => complete(server.url, ids(64, 1000 * n + i), DECODE)));
    const wall = (performance.now() - t0) / 1000;
    const tokens = runs.reduce((s, r) => s + r.usage.completion_tokens, 0);
    result.throughput.push({ streams: n, output_tokens: tokens, seconds: +wall.toFixed(3), tokens_per_s: +(tokens / wall).toFixed(2),
                             mean_ttft_s: +(runs.reduce((s, r) => s + r.ttft, 0) / n).toFixed(3),
                             // after the first token: what `seek generate` reports as decode tokens/s
                             decode_tokens_per_s_per_stream: +(runs.reduce((s, r) =>
                               s + (r.usage.completion_tokens - 1) / (r.total - r.ttft), 0) / n).toFixed(2) });
    console.error(JSON.stringify(result.throughput.at(-1)));
  }
  const base = result.throughput.find((t) => t.streams === 1);
  for (const t of result.throughput) t.speedup_vs_1 = base ? +(t.tokens_per_s / base.tokens_per_s).toFixed(2) : null;
  // 2. a long prompt: miss, then hit
  const long = ids(LONG, 7);
  for (const kind of ["miss", "hit"]) {
    const c0 = cpuSeconds(server.proc.pid);
    const r = await complete(server.url, long, 1);
    const cpu = cpuSeconds(server.proc.pid) - c0;
    result.cache[kind] = { prompt_tokens: r.usage.prompt_tokens, cache_hit_tokens: r.usage.prompt_cache_hit_tokens,
                           ttft_s: +r.ttft.toFixed(3), cpu_s: LAUNCHER.length ? null : +cpu.toFixed(2),
                           cpu_s_per_million_prompt_tokens: LAUNCHER.length ? null : +(cpu / r.usage.prompt_tokens * 1e6).toFixed(0) };
    console.error(kind, JSON.stringify(result.cache[kind]));
  }
  result.cache.ttft_ratio = +(result.cache.miss.ttft_s / result.cache.hit.ttft_s).toFixed(1);
  result.cache.cpu_ratio = LAUNCHER.length ? null : +(result.cache.miss.cpu_s / Math.max(result.cache.hit.cpu_s, 0.01)).toFixed(1);
  // 3. bounded load: Poisson arrivals at half the 16-stream request capacity
  const best = result.throughput.at(-1);
  const rate = 0.5 * best.tokens_per_s / DECODE;  // requests per second
  const lat = [];
  const jobs = [];
  let t = 0, seed = 1;
  const rng = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
  const t0 = performance.now();
  for (let i = 0; i < LOAD_REQUESTS; i++) {
    t += -Math.log(1 - rng()) / rate;
    const at = t;
    jobs.push(new Promise((res) => setTimeout(res, Math.max(0, at * 1000 - (performance.now() - t0))))
      .then(() => complete(server.url, ids(64, 50000 + i), DECODE)).then((r) => lat.push(r.total)));
  }
  await Promise.all(jobs);
  if (LOAD_REQUESTS > 0) result.load = { requests: LOAD_REQUESTS, rate_per_s: +rate.toFixed(3), prompt_tokens: 64, max_tokens: DECODE,
                  p50_s: +pct(lat, 50).toFixed(3), p99_s: +pct(lat, 99).toFixed(3), max_s: +Math.max(...lat).toFixed(3) };
  console.error("load", JSON.stringify(result.load));
} finally {
  const exited = new Promise((r) => server.proc.once("exit", r));
  server.proc.kill("SIGTERM");
  await exited;
  fs.rmSync(server.cacheDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 2));
if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2));
