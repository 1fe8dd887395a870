// bpe_trainer.h — trains a byte-level BPE tokenizer on text and writes it in Hugging Face's format
// (tokenizer.json + tokenizer_config.json), which Tokenizer::load and HF's tokenizers both read.
//
// Layout of the vocabulary: ids 0..9 are seek's special tokens (seek_special_tokens(), in that order,
// also listed as added_tokens; special: true for bos, eos and pad only); ids 10..265 are the 256 bytes in byte order (in
// GPT-2's byte-level alphabet); then one id per merge in the order learned. The pre-tokenizer is
// ByteLevel with use_regex (GPT-2's regex), add_prefix_space false (with split_digits, after a Split that
// isolates every digit); the decoder is ByteLevel; merges are
// written as "a b" strings.
//
// Training is the classic algorithm: count the pre-tokens of every text, then repeatedly merge the most
// frequent adjacent pair (counted over pre-tokens weighted by frequency), ties broken by the bytes of the
// pair (smaller first), until the vocabulary reaches vocab_size or no pair occurs min_frequency times.
// The result depends only on the texts and the options (deterministic). Not done: BPE dropout,
// normalization, a word-count limit (the corpus must fit in memory).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace seek {

// <|bos|> <|eos|> <|pad|> <|system|> <|user|> <|assistant|> <think> </think> <answer> </answer>: ids 0..9.
// All are added tokens, matched whole in text; only the first kSkippedSpecials (bos, eos, pad) are
// marked "special": true, the ones a decode that skips special tokens leaves out. The role and
// reasoning tags stay in decoded and streamed text, as DeepSeek's own tokenizers mark theirs
// (<｜User｜>, <think>: special false), so a reply's reasoning can be split from its answer.
const std::vector<std::string>& seek_special_tokens();
inline constexpr int64_t kSkippedSpecials = 3;

struct BpeTrainOptions {
  int64_t vocab_size = 8192;  // total, specials and the 256 bytes included (at least 266)
  int64_t min_frequency = 2;  // a pair must occur at least this often to be merged
  // Every number character (\p{N}) its own pre-token, so no merge joins digits: "4821" is always the
  // tokens 4 8 2 1 (DeepSeek-V3 splits into groups of up to 3; small models do arithmetic far better
  // one digit at a time). Written as a Split pre-tokenizer before the ByteLevel one.
  bool split_digits = false;
};

struct TrainedTokenizer {
  std::string tokenizer_json;         // tokenizer.json text
  std::string tokenizer_config_json;  // tokenizer_config.json text
  int64_t vocab_size = 0;             // what was reached (may be below the target on a small corpus)
  int64_t n_merges = 0;
};

TrainedTokenizer train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& options);

// Writes tokenizer.json and tokenizer_config.json into dir (created if missing), each atomically.
void write_tokenizer_dir(const std::string& dir, const TrainedTokenizer& t);

}  // namespace seek
