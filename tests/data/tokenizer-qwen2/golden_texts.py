# golden_texts.py — the texts of golden.json here and in ../tokenizer-llama3 (fixed seeds):
#   python3 golden_texts.py qwen > texts.json   (or llama), then make_golden.js (README.md).
import json, random, sys
cases = {
 "english": "Hello, world! The quick brown fox jumps over the lazy dog.",
 "contractions": "I'm sure they'll say it's fine, WE'LL see. Don't, can't, it'S, you'RE, I'D",
 "code": "def f(x):\n    return x**2 + 3*x  # square\n\n\tif (a != b) { printf(\"%d\\n\", a); }\n",
 "digits": "1 12 123 1234 12345 123456 1234567 3.14159 2025-01-20 1,000,000 007",
 "digits_in_words": "abc123def x2y 99bottles v1.2.3 0x1F4A9",
 "whitespace_runs": "a  b   c    d\t\te \t f\n\n\ng  \n  h   ",
 "leading_spaces": "    indented line\n        more\n",
 "newlines": "line1\nline2\r\nline3\rline4\n\n\n\nline5 \n \n",
 "chinese": "你好，世界！我想在apple工作1314151天～深度求索。",
 "japanese": "こんにちは、世界。カタカナとひらがなと漢字。",
 "korean": "안녕하세요 세계! 한국어 텍스트입니다.",
 "arabic": "مرحبا بالعالم! هذا نص عربي ١٢٣٤٥.",
 "devanagari": "नमस्ते दुनिया। यह हिंदी पाठ है ०१२३।",
 "thai": "สวัสดีชาวโลก ภาษาไทย",
 "cyrillic_greek": "Привет, мир! Ελληνικά ΚΕΦΑΛΑΙΑ και πεζά.",
 "emoji_zwj": "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs, 🇨🇳🇺🇸 flags, 😶‍🌫️ face 🚀🚀🚀",
 "decomposed_accents": "cafe\u0301 re\u0301sume\u0301 A\u030angstro\u0308m nai\u0308ve Zu\u0308rich",
 "precomposed_accents": "café résumé Ångström naïve Zürich",
 "hangul_jamo": "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af",
 "singletons": "\u2126 ohm, \u212b angstrom, \u212a kelvin, \uf900 cjk compat",
 "fullwidth": "ＡＢＣ１２３！ｈｅｌｌｏ　ｗｏｒｌｄ",
 "compatibility": "ﬁ ﬀ ligatures, ① ② circled, x² y³ superscripts, ℌ Ⅸ ½",
 "math": "∀x∈ℝ: x² ≥ 0, ∑_{i=1}^{n} i = n(n+1)/2",
 "zalgo": "Z̷͑a͒l͓g͔o t̸e̵x̶t",
 "unicode_spaces": "a\u00a0b\u3000c\u2028d\u2003e\u202ff",
 "punctuation_runs": "Wait!!! Really??? ... --- *** ((( ))) \"quoted\" 'single'",
 "url_email": "https://example.com/path?q=1&r=two#frag mail me@example.org",
 "mixed": "The 深度 model, 70B, scored 90.2% on MATH-500 🎉 (pass@1).",
 "repeats": "aaaaaaaaaaaaaaaaaaaaaaaa ________________ ================",
 "think_tags": "<think>\nLet me think.\n</think>\n\nThe answer is 4.",
 "invalid_looking": "\\u00e9 \\n literal backslashes",
}
special = {
 "qwen": {
  "chatml": "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi 你好<|im_end|>\n<|im_start|>assistant\n",
  "special_glued": "x<|endoftext|>y<|im_end|><|im_end|> <|im_start|>",
  "fim": "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
  "nfc_near_special": "e\u0301<|im_end|>\u0301a",
 },
 "llama": {
  "ignore_merges": "mektedir jeho zdrav nhanh dikkat",
  "llama3_chat": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi 你好<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
  "special_glued": "x<|end_of_text|>y<|eot_id|><|eot_id|> <|reserved_special_token_5|>",
 },
}
atoms = ["hello", "World", " the", "  ", "\t", "\n", "\r\n", "\n\n\n", "   ", "0", "42", "3.14159", "1234567",
  "你好", "世界", "深度求索", "こんにちは", "カタカナ", "안녕하세요", "Привет", "мир", "مرحبا", "بالعالم",
  "नमस्ते", "दुनिया", "สวัสดี", "🚀", "😶‍🌫️", "👨‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🇨🇳", "é", "e\u0301", "A\u030a", "\u2126",
  "\u1100\u1161", "Z̷͑a͒l͓g͔o", "'s", "'RE", "don't", "!!", "?", ".", ",", "{", "}", "()", "<", ">", "<think>", "</think>",
  "\u200b", "ＡＢＣ", "∀x∈ℝ", "x²", "_", "-", "==", "//", "\u00a0", "\u3000", "\u2028", "a", "b", "Q", "ﬁ", "\u0301"]
def rand_texts(seed, n, extra):
  r = random.Random(seed)
  out = []
  for i in range(n):
    s = ""
    for _ in range(1 + i % 40):
      if r.randrange(10) == 0:
        # a random code point of any plane (no surrogates, no U+FEFF / U+0085, whose \s class
        # differs between JavaScript and Rust/PCRE2)
        cp = r.randrange(1, 0x10FFFF)
        if 0xD800 <= cp <= 0xDFFF or cp in (0xFEFF, 0x85): cp = 0x4E00
        s += chr(cp)
      else:
        s += r.choice(atoms + extra)
    out.append(s)
  return out
which = sys.argv[1]
c = dict(cases); c.update(special[which])
extra = ["<|im_end|>", "<|im_start|>", "<|endoftext|>"] if which == "qwen" else ["<|eot_id|>", "<|begin_of_text|>"]
print(json.dumps({"cases": c, "random": rand_texts(2025 if which == "qwen" else 3, 400, extra)}, ensure_ascii=False))
