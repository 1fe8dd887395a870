// The chat page in headless Chromium (Debian's, driven by playwright-core): it loads from the binary,
// lists the model, sends a message, shows the streamed answer and the reply's usage and cache numbers,
// and a second message in the same chat reports cache hits. Saves a screenshot to $SEEK_WORK/chat.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { startServer, WORK, MODEL_NAME } from "./common.mjs";

const CHROMIUM = process.env.SEEK_CHROMIUM || "/usr/bin/chromium";
let server, browser;

before(async () => {
  server = await startServer(["--debug-step-delay-ms", "3"]);  // slow enough to see the stream grow
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});
after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test("send a message, watch it stream, see usage and cache hits", async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // The model has random weights and the page samples. A reply that began with <|eos|> (id 1), <think>
  // (6) or </think> (7) would leave the answer or the reasoning empty (CI once drew one; 3 of 512 ids,
  // ~0.6% a reply if all were equally likely), so every request the page sends forbids them. The Stop
  // part below relies on no <|eos|> too; the R1-Zero part swaps this route for a canned reply and back.
  const forbidEmptying = (route) =>
    route.continue({ postData: JSON.stringify({ ...route.request().postDataJSON(), logit_bias: { 1: -100, 6: -100, 7: -100 } }) });
  await page.route("**/v1/chat/completions", forbidEmptying);
  await page.goto(server.url + "/");
  assert.equal(await page.title(), "seek chat");
  await page.waitForFunction((name) => [...document.querySelectorAll("#model option")].some((o) => o.textContent === name), MODEL_NAME);
  await page.selectOption("#model", MODEL_NAME);
  // The line that says what the model is (`seek demo` wrote its seek_model.json).
  assert.match(await page.textContent("#about"), /^seek demo: a tiny DeepSeek-V3-architecture model with random weights .*parameters/);
  await page.fill("#max", "48");

  // Watch the answer grow: record its length at every mutation until the reply is done.
  await page.evaluate(() => {
    window.lengths = [];
    new MutationObserver(() => {
      const a = document.querySelector(".msg.assistant .answer");
      if (a) window.lengths.push(a.textContent.length);
    }).observe(document.getElementById("log"), { subtree: true, childList: true, characterData: true });
  });
  await page.fill("#input", "What is context caching in DeepSeek's API?");
  await page.press("#input", "Enter");
  await page.waitForSelector('.msg.assistant[data-state="done"]', { timeout: 30000 });
  const answer = await page.textContent(".msg.assistant .answer");
  const usage = await page.textContent(".msg.assistant .usage");
  assert.ok(answer.length > 0, "an answer was shown");
  assert.ok(!answer.startsWith("error"), answer);
  const lengths = await page.evaluate(() => window.lengths.filter((n) => n > 0));
  assert.ok(new Set(lengths).size >= 3, "the answer arrived in several pieces: " + lengths.join(","));
  assert.match(usage, /prompt \d+ tokens \(cache hit 0, miss \d+\)/);

  // The second turn repeats the first as its prefix: the page shows the hit.
  await page.fill("#input", "And how much cheaper is a cache hit?");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => {
    const done = document.querySelectorAll('.msg.assistant[data-state="done"]');
    return done.length === 2;
  }, null, { timeout: 30000 });
  const usage2 = await page.textContent(".msg.assistant:nth-of-type(4) .usage");
  const hit = Number(usage2.match(/cache hit (\d+)/)[1]);
  assert.ok(hit > 0, usage2);

  // Reasoning on: the reasoning block appears apart from the answer, collapsible.
  await page.check("#think");
  await page.fill("#max", "16");
  await page.fill("#input", "Think first.");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant[data-state="done"]').length === 3, null, { timeout: 30000 });
  const reasoningShown = await page.evaluate(() => {
    const last = [...document.querySelectorAll(".msg.assistant")].pop();
    const d = last.querySelector("details.reasoning");
    return !d.hidden && d.textContent.length > "reasoning".length;
  });
  assert.ok(reasoningShown, "reasoning shown in its own collapsible block");

  // A reply in the R1-Zero template, as seek's own models give it (streamed with the tags split across
  // pieces): the page shows the answer without the tags.
  assert.equal(await page.evaluate(() => shownAnswer("So 47 + 85 = 132.\n<answer>13")), "So 47 + 85 = 132.\n13");
  assert.equal(await page.evaluate(() => shownAnswer("x <ans")), "x ");
  assert.equal(await page.evaluate(() => shownAnswer("1 < 2 <b>")), "1 < 2 <b>");
  const pieces = ["So 47 + 85 = 132.\n<ans", "wer>13", "2</ans", "wer>"];
  const sse = pieces.map((p) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: p } }] })}\n\n`).join("") +
    `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\ndata: [DONE]\n\n`;
  await page.unroute("**/v1/chat/completions");
  await page.route("**/v1/chat/completions", (route) =>
    route.fulfill({ status: 200, headers: { "content-type": "text/event-stream" }, body: sse }));
  await page.uncheck("#think");
  await page.fill("#input", "What is 47 + 85?");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant[data-state="done"]').length === 4, null, { timeout: 30000 });
  assert.equal(await page.evaluate(() => [...document.querySelectorAll(".msg.assistant")].pop().querySelector(".answer").textContent),
               "So 47 + 85 = 132.\n132");
  await page.unroute("**/v1/chat/completions");
  await page.route("**/v1/chat/completions", forbidEmptying);

  // Stop: a long reply is cut short by the Stop button, and the server drops the sequence.
  await page.uncheck("#think");
  await page.fill("#max", "600");
  // No end-of-sequence token (forbidEmptying), so this one would run long.
  await page.fill("#input", "Now a very long answer, please.");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => {
    const last = [...document.querySelectorAll(".msg.assistant")].pop();
    return last.dataset.state === "streaming" && last.querySelector(".answer").textContent.length > 5;
  }, null, { timeout: 30000 });
  assert.equal(await page.textContent("#send"), "Stop");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant[data-state="done"]').length === 5, null, { timeout: 30000 });
  assert.equal(await page.evaluate(() => [...document.querySelectorAll(".msg.assistant")].pop().dataset.finish), "stopped");
  assert.equal(await page.textContent("#send"), "Send");
  let cancelled = 0;
  for (let i = 0; i < 100 && !cancelled; i++) {
    const m = (await (await fetch(server.url + "/metrics")).text()).match(/^seek_requests_cancelled_total (\d+)/m);
    cancelled = Number(m[1]);
    if (!cancelled) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(cancelled, 1, "the stopped reply's sequence was cancelled");

  const shot = path.join(WORK, "chat.png");
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10000, "screenshot written");
  assert.deepEqual(errors, []);
});
