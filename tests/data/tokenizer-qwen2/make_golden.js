// make_golden.js — golden ids for seek's tokenizer tests from @lenml/tokenizers (a JavaScript port of
// Hugging Face tokenizers, transformers.js), on any tokenizer directory. Used for tests/data/tokenizer-qwen2
// and tests/data/tokenizer-llama3. Usage, in a scratch dir:
//   npm install @lenml/tokenizers@3.7.2
//   node make_golden.js TOKENIZER_DIR texts.json "SOURCE" > golden.json
// texts.json: {"cases": {name: text, ...}, "random": [text, ...]}. Output: {"source", "cases": {name:
// {"text", "ids"}}, "random": [{"text", "ids"}]}; ids are encode(text, {add_special_tokens: false}).
const fs = require('fs');
const { TokenizerLoader } = require('@lenml/tokenizers');
const [dir, textsFile, source] = process.argv.slice(2);
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(dir + '/tokenizer.json', 'utf8')),
  tokenizerConfig: JSON.parse(fs.readFileSync(dir + '/tokenizer_config.json', 'utf8')),
});
const enc = t => Array.from(tok.encode(t, { add_special_tokens: false }));
const input = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
const out = { source, cases: {}, random: [] };
for (const [name, text] of Object.entries(input.cases)) out.cases[name] = { text, ids: enc(text) };
for (const text of input.random || []) out.random.push({ text, ids: enc(text) });
process.stdout.write(JSON.stringify(out, null, 0).replace(/\{"text"/g, '\n{"text"') + '\n');
