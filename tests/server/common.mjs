// common.mjs — starts and stops `seek serve` for the node tests. Environment (set by CTest):
//   SEEK        the seek binary          SEEK_MODEL  a tiny model directory (seek demo --out)
//   SEEK_WORK   a scratch directory for cache dirs and screenshots
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import os from "node:os";

export const SEEK = process.env.SEEK || "build/seek";
export const MODEL = process.env.SEEK_MODEL || "build/test-demo-model";
export const WORK = process.env.SEEK_WORK || fs.mkdtempSync(path.join(os.tmpdir(), "seek-server-test-"));
fs.mkdirSync(WORK, { recursive: true });
export const MODEL_NAME = "tiny";

// Resolves once the server says "ready"; rejects if it exits first or takes over 30 s. `launcher`: a
// command line the server runs under (["mpiexec", "-n", "2"]).
export function startServer(extraArgs = [], launcher = [], model = MODEL) {
  const args = ["serve", "-m", model, "--port", "0", "--name", MODEL_NAME, ...extraArgs];
  const cmd = launcher.length ? launcher[0] : SEEK;
  const proc = spawn(cmd, launcher.length ? [...launcher.slice(1), SEEK, ...args] : args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill("SIGKILL"); reject(new Error("seek serve did not start:\n" + out + err)); }, 30000);
    proc.stderr.on("data", (d) => { err += d; });
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^ ]+)/);
      if (m && out.includes("ready")) {
        clearTimeout(timer);
        resolve({
          url: m[1], proc, log: () => out + err,
          stop: () => new Promise((res) => {
            if (proc.exitCode !== null) return res(proc.exitCode);
            proc.once("exit", (code, sig) => res(code ?? sig));
            proc.kill("SIGTERM");
          }),
        });
      }
    });
    proc.once("exit", (code) => { clearTimeout(timer); reject(new Error(`seek serve exited with ${code}:\n${out}${err}`)); });
  });
}

export const chatBody = (extra = {}) => ({
  model: MODEL_NAME,
  messages: [
    { role: "system", content: "You are seek, a small model that answers questions about DeepSeek." },
    { role: "user", content: "What does multi-head latent attention cache per token?" },
  ],
  temperature: 0,
  max_tokens: 16,
  ...extra,
});
