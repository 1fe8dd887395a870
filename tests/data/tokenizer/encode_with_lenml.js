// encode_with_lenml.js — encodes a JSON array of texts with @lenml/tokenizers (a JavaScript port of HF
// tokenizers) to cross-check seek. Usage, in a scratch dir:
//   npm install @lenml/tokenizers@3.7.2 && node encode_with_lenml.js TOKENIZER_DIR texts.json > ids.json
const fs = require('fs');
const { TokenizerLoader } = require('@lenml/tokenizers');
const [dir, textsFile] = process.argv.slice(2);
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(dir + '/tokenizer.json', 'utf8')),
  tokenizerConfig: JSON.parse(fs.readFileSync(dir + '/tokenizer_config.json', 'utf8')),
});
const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
const out = texts.map(t => Array.from(tok.encode(t, { add_special_tokens: false })));
process.stdout.write(JSON.stringify(out));
