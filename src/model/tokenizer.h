// tokenizer.h — Hugging Face byte-level BPE tokenizers (tokenizer.json), as DeepSeek-V2/V3/R1, the
// R1-Distill students' Qwen2.5 and Llama 3, and GPT-2 style models ship them; the same tokenizer built
// from a GGUF file's parts (from_parts); and a streaming detokenizer.
//
// What it reads (each unsupported value is refused with an Error naming the file and the field):
// - model: type "BPE"; vocab; merges as "a b" strings or ["a", "b"] pairs; ignore_merges (Llama 3: a
//   pre-token that is itself in the vocabulary is one token, without merges); dropout null/0; no
//   continuing_subword_prefix / end_of_word_suffix; byte_fallback false. Every one of the 256
//   byte-level characters must be in the vocabulary.
// - added_tokens: matched before the pre-tokenizer, leftmost-longest, as HF's AddedVocabulary does:
//   those with normalized = false in the raw text first; then each piece between them is normalized
//   and those with normalized = true are matched in it by their normalized content (absent, the flag
//   defaults to !special, HF's default). `special` marks them for is_special() and
//   decode(skip_special). lstrip / rstrip swallow ASCII whitespace beside the token; single_word
//   requires that the neighbours are not ASCII letters, digits or '_' (an approximation of HF's Unicode
//   word test).
// - normalizer (utf8proc, Unicode 15): null, NFC (Qwen2.5), NFD, NFKC, NFKD, Lowercase (per code point,
//   utf8proc's simple mapping: no final-sigma or "İ" special cases of Rust's to_lowercase),
//   StripAccents (drops Mn marks), Strip (White_Space at either end), Replace (a String pattern, or a
//   Regex one in PCRE2, replaced by `content` literally), Prepend (to a non-empty piece), or a Sequence
//   of them. BertNormalizer, Precompiled, NMT and ByteLevel are refused.
// - pre_tokenizer: null, Split (Regex or String pattern; behavior Isolated, Removed,
//   MergedWithPrevious or MergedWithNext; invert), ByteLevel (add_prefix_space; use_regex applies the
//   GPT-2 regex; use_regex false as in Qwen2.5 and Llama 3 after their Split), or a Sequence of these.
//   Regexes run in PCRE2 (UTF + UCP, JIT), whose classes are those of HF's Rust regexes: \s is Unicode
//   White_Space, so U+FEFF is not a space and U+0085 is (JavaScript ports differ on both: "  \uFEFF"
//   splits as " ", " ", "\uFEFF" here and in HF, "  ", "\uFEFF" in JS).
// - decoder: ByteLevel (or null, treated the same). post_processor is ignored: add_bos is explicit.
// - tokenizer_config.json (optional, next to tokenizer.json): bos_token / eos_token, as a string or an
//   AddedToken object; chat_template (kept as text for chat_template.h to recognise).
//
// Invalid UTF-8 policy: encode() never fails on bytes. The text is cut into maximal valid UTF-8 runs
// and invalid bytes; normalizers rewrite only the runs (invalid bytes pass through unnormalized, and a
// run is normalized on its own), the runs are pre-tokenized as usual and each invalid byte becomes its
// own pre-token, i.e. its byte-level token. decode() returns the exact bytes of the tokens (no U+FFFD
// substitution), so decode(encode(b)) == b for ANY byte string b when there is no normalizer (with one,
// decode gives the normalized text). StreamDecoder, whose output is shown to people, always emits valid
// UTF-8: bytes that cannot start or continue a character become U+FFFD (one per maximal invalid
// subpart, as Python's errors="replace"), and flush() turns a held-back incomplete character into one
// U+FFFD.
//
// Not done: WordPiece / Unigram / WordLevel models, Metaspace, BPE dropout, byte_fallback, offsets,
// padding / truncation, post-processor templates, Unicode word boundaries for single_word.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace seek {

// A tokenizer as a GGUF file stores it (tokenizer.ggml.*), for Tokenizer::from_parts.
struct TokenizerParts {
  std::vector<std::string> tokens;   // byte-level pieces, id = index (tokenizer.ggml.tokens); added tokens as their text
  std::vector<std::string> merges;   // "a b" (tokenizer.ggml.merges), rank = index
  std::vector<int32_t> token_types;  // tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 4 user defined,
                                     // 5 unused, 6 byte; empty: all normal
  std::string pre;                   // tokenizer.ggml.pre: see from_parts for the names known
  int32_t bos_id = -1, eos_id = -1;  // tokenizer.ggml.bos_token_id / eos_token_id; -1: none
  bool ignore_merges = false;        // Llama 3 (llama-bpe); also implied by that pre-tokenizer
  std::string chat_template;         // tokenizer.chat_template, if any (for chat_template.h)
};

class Tokenizer {
 public:
  // Empty until assigned from load(); every method of an empty one throws Error. Copies share the
  // (immutable) tables; encode/decode may run from several threads at once.
  // dir (holding tokenizer.json and optionally tokenizer_config.json) or a tokenizer.json path.
  // Throws Error naming the file/field.
  static Tokenizer load(const std::string& path);
  // From a GGUF file's parts. `pre` picks the pre-tokenizer regexes llama.cpp uses for that name:
  // default, gpt-2, smollm (single digits, then GPT-2's: seek's own tokenizers), llama-bpe / llama3 /
  // llama-v3 (ignore_merges), qwen2 / deepseek-r1-qwen (plus the NFC normalizer of Qwen2's
  // tokenizer.json, which llama.cpp leaves out), deepseek-v3, deepseek-llm,
  // deepseek-coder; another name is an Error that lists these. Control tokens (type 3) become special
  // added tokens and user-defined ones (4) plain added tokens, both matched in the raw text
  // (normalized = false), as llama.cpp treats them; every other type is a vocabulary entry. An empty
  // token is an unused id. Errors name `source` (the GGUF path) and the key.
  static Tokenizer from_parts(const TokenizerParts& p, const std::string& source);

  // Added/special tokens written literally in text are matched first. add_bos prepends bos_id()
  // (an Error if the tokenizer has none).
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false) const;
  // The bytes of the tokens (added tokens as their content). Throws Error on an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // The vocabulary string (byte-level form, e.g. "Ġworld"); an added token's content.
  std::string_view piece(int32_t id) const;
  // The raw bytes that decode() writes for id (empty for an unused id).
  std::string_view bytes(int32_t id) const;
  bool is_special(int32_t id) const;
  int32_t token_id(std::string_view token) const;  // -1 if absent (vocab or added token content)
  int32_t bos_id() const;  // from tokenizer_config.json when present, else -1
  int32_t eos_id() const;
  // tokenizer_config.json's (or the GGUF's) chat template, as text; empty if none.
  const std::string& chat_template() const;
  int64_t vocab_size() const;  // max id + 1

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// Streaming detokenizer: push ids one at a time, get text that is always complete UTF-8 (holds back
// a partial character until it completes). For ids whose decode() is valid UTF-8, the concatenation
// of every push() and flush() equals decode().
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& t, bool skip_special = false);
  std::string push(int32_t id);
  std::string flush();  // a held-back incomplete character becomes U+FFFD

 private:
  std::string drain(bool final);
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;
};

// Byte-level helpers (GPT-2's bytes_to_unicode), shared with the BPE trainer.
std::string byte_level_encode(std::string_view bytes);  // raw bytes -> "Ġ..." form
// Length of the valid UTF-8 sequence at s[i] (1..4), or 0 if the bytes there are not one.
int utf8_sequence_length(std::string_view s, size_t i);

}  // namespace seek
