// tokenizer.h — Hugging Face byte-level BPE tokenizers (tokenizer.json), as DeepSeek-V2/V3/R1, Qwen2 and
// GPT-2 style models ship them, and a streaming detokenizer.
//
// What it reads (each unsupported value is refused with an Error naming the file and the field):
// - model: type "BPE"; vocab; merges as "a b" strings or ["a", "b"] pairs; ignore_merges; dropout null/0;
//   no continuing_subword_prefix / end_of_word_suffix; byte_fallback false. Every one of the 256
//   byte-level characters must be in the vocabulary.
// - added_tokens: matched in the raw text before anything else, leftmost-longest; `special` marks them
//   for is_special() and decode(skip_special). lstrip / rstrip swallow ASCII whitespace beside the
//   token; single_word requires that the neighbours are not ASCII letters, digits or '_' (an
//   approximation of HF's Unicode word test). `normalized` has no effect because the normalizers we
//   accept are the identity.
// - normalizer: null or a Sequence of them (possibly empty). NFC, NFKC, Lowercase, ... are refused.
// - pre_tokenizer: null, Split (Regex or String pattern; behavior Isolated, Removed,
//   MergedWithPrevious or MergedWithNext; invert), ByteLevel (add_prefix_space; use_regex applies the
//   GPT-2 regex), or a Sequence of these. Regexes run in PCRE2 (UTF + UCP, JIT), whose classes are
//   those of HF's Rust regexes: \s is Unicode White_Space, so U+FEFF is not a space (JavaScript ports
//   differ there: "  \uFEFF" splits as " ", " ", "\uFEFF" here and in HF, "  ", "\uFEFF" in JS).
// - decoder: ByteLevel (or null, treated the same). post_processor is ignored: add_bos is explicit.
// - tokenizer_config.json (optional, next to tokenizer.json): bos_token / eos_token, as a string or an
//   AddedToken object.
//
// Invalid UTF-8 policy: encode() never fails on bytes. The text is cut into maximal valid UTF-8 runs
// and invalid bytes; the runs are pre-tokenized as usual and each invalid byte becomes its own
// pre-token, i.e. its byte-level token. decode() returns the exact bytes of the tokens (no U+FFFD
// substitution), so decode(encode(b)) == b for ANY byte string b. StreamDecoder, whose output is
// shown to people, always emits valid UTF-8: bytes that cannot start or continue a character become
// U+FFFD (one per maximal invalid subpart, as Python's errors="replace"), and flush() turns a held-back
// incomplete character into one U+FFFD.
//
// Not done: WordPiece / Unigram / WordLevel models, Unicode normalization, Metaspace, BPE dropout,
// offsets, padding / truncation, post-processor templates.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace seek {

class Tokenizer {
 public:
  // Empty until assigned from load(); every method of an empty one throws Error. Copies share the
  // (immutable) tables; encode/decode may run from several threads at once.
  // dir (holding tokenizer.json and optionally tokenizer_config.json) or a tokenizer.json path.
  // Throws Error naming the file/field.
  static Tokenizer load(const std::string& path);

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
