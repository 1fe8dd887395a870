// bpe_trainer.cpp — byte-level BPE training (see bpe_trainer.h): pre-token counting with GPT-2's regex
// (PCRE2), then greedy pair merging with incremental pair counts and a lazy max-heap.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/bpe_trainer.h"

#include <pcre2.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace seek {

const std::vector<std::string>& seek_special_tokens() {
  static const std::vector<std::string> s = {"<|bos|>",       "<|eos|>", "<|pad|>",  "<|system|>", "<|user|>",
                                             "<|assistant|>", "<think>", "</think>", "<answer>",   "</answer>"};
  return s;
}

namespace {

const char* kDigitPattern = R"(\p{N})";
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Counts the GPT-2 regex pre-tokens of text; invalid UTF-8 bytes are single-byte pre-tokens (as in
// Tokenizer::encode), which hold no pair and so are not counted.
// With `digits` (the regex \p{N}), every number character is first isolated as a pre-token of its own,
// as the Split pre-tokenizer that precedes ByteLevel in the written tokenizer.json does.
void count_pre_tokens(const std::string& text, pcre2_code* re, pcre2_match_data* md, pcre2_code* digits,
                      pcre2_match_data* dmd, std::unordered_map<std::string, int64_t>& counts) {
  auto count_piece = [&](std::string_view run) {
    size_t pos = 0;
    while (pos < run.size()) {
      int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(run.data()), run.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) throw Error("tokenizer train: regex match failed (code " + std::to_string(rc) + ")");
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] == ov[0]) {  // cannot happen with this regex, but never loop forever
        pos = ov[0] + 1;
        while (pos < run.size() && (uint8_t(run[pos]) & 0xC0) == 0x80) ++pos;
        continue;
      }
      if (ov[1] - ov[0] > 1) ++counts[std::string(run.substr(ov[0], ov[1] - ov[0]))];
      pos = ov[1];
    }
  };
  auto count_run = [&](std::string_view run) {
    if (!digits) return count_piece(run);
    size_t pos = 0;
    while (pos < run.size()) {
      int rc = pcre2_match(digits, reinterpret_cast<PCRE2_SPTR>(run.data()), run.size(), pos, PCRE2_NO_UTF_CHECK, dmd,
                           nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) throw Error("tokenizer train: regex match failed (code " + std::to_string(rc) + ")");
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(dmd);
      count_piece(run.substr(pos, ov[0] - pos));  // the digit itself is one character: no pair to count
      pos = ov[1];
    }
    count_piece(run.substr(pos));
  };
  size_t i = 0, run = 0;
  std::string_view s = text;
  while (i < s.size()) {
    if (uint8_t(s[i]) < 0x80) { ++i; continue; }
    int n = utf8_sequence_length(s, i);
    if (n > 0) { i += n; continue; }
    count_run(s.substr(run, i - run));
    run = ++i;
  }
  count_run(s.substr(run));
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

TrainedTokenizer train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& o) {
  const auto& specials = seek_special_tokens();
  const int64_t base = int64_t(specials.size()) + 256;
  if (o.vocab_size < base)
    throw Error(strfmt("tokenizer train: --vocab-size %lld is below %lld (the %zu special tokens and 256 bytes)",
                       (long long)o.vocab_size, (long long)base, specials.size()));

  // 1. Pre-token counts.
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  SEEK_ASSERT(re);
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
  pcre2_code* digits = nullptr;
  pcre2_match_data* dmd = nullptr;
  if (o.split_digits) {
    digits = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kDigitPattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                           &err, &off, nullptr);
    SEEK_ASSERT(digits);
    dmd = pcre2_match_data_create_from_pattern(digits, nullptr);
  }
  auto free_all = [&] {
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    if (dmd) pcre2_match_data_free(dmd);
    if (digits) pcre2_code_free(digits);
  };
  std::unordered_map<std::string, int64_t> counts;
  try {
    for (const std::string& t : texts) count_pre_tokens(t, re, md, digits, dmd, counts);
  } catch (...) {
    free_all();
    throw;
  }
  free_all();

  // 2. Words as symbol ids, in sorted order so that everything below is deterministic.
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  counts.clear();
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> token_bytes;  // [V] raw bytes of each id
  for (const std::string& s : specials) token_bytes.push_back(s);
  for (int b = 0; b < 256; ++b) token_bytes.push_back(std::string(1, char(b)));
  std::unordered_map<std::string, int32_t> id_of;
  for (int32_t i = int32_t(specials.size()); i < int32_t(token_bytes.size()); ++i) id_of[token_bytes[i]] = i;
  const int32_t byte0 = int32_t(specials.size());

  std::vector<std::vector<int32_t>> words(sorted.size());
  std::vector<int64_t> freq(sorted.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words holding it (may repeat / be stale)
  for (size_t w = 0; w < sorted.size(); ++w) {
    freq[w] = sorted[w].second;
    for (char c : sorted[w].first) words[w].push_back(byte0 + uint8_t(c));
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      uint64_t k = pair_key(words[w][i], words[w][i + 1]);
      pair_count[k] += freq[w];
      auto& v = where[k];
      if (v.empty() || v.back() != int32_t(w)) v.push_back(int32_t(w));
    }
  }
  sorted.clear();

  // 3. Merge loop. Heap order: larger count first, then smaller (bytes of a, bytes of b).
  struct Entry {
    int64_t count;
    uint64_t key;
  };
  auto less_urgent = [&](const Entry& x, const Entry& y) {
    if (x.count != y.count) return x.count < y.count;
    int32_t xa = int32_t(x.key >> 32), xb = int32_t(x.key & 0xFFFFFFFF);
    int32_t ya = int32_t(y.key >> 32), yb = int32_t(y.key & 0xFFFFFFFF);
    int c = token_bytes[xa].compare(token_bytes[ya]);
    if (c != 0) return c > 0;
    return token_bytes[xb].compare(token_bytes[yb]) > 0;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less_urgent)> heap(less_urgent);
  {
    std::vector<uint64_t> keys;
    keys.reserve(pair_count.size());
    for (auto& [k, c] : pair_count) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    for (uint64_t k : keys) heap.push({pair_count[k], k});
  }
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<uint64_t> touched;
  while (int64_t(id_of.size() + specials.size()) < o.vocab_size && !heap.empty()) {
    Entry e = heap.top();
    heap.pop();
    auto pc = pair_count.find(e.key);
    int64_t actual = pc == pair_count.end() ? 0 : pc->second;
    if (actual != e.count) {
      if (actual > 0) heap.push({actual, e.key});
      continue;
    }
    if (actual < o.min_frequency || actual <= 0) break;
    const int32_t a = int32_t(e.key >> 32), b = int32_t(e.key & 0xFFFFFFFF);
    std::string merged_bytes = token_bytes[a] + token_bytes[b];
    int32_t c;
    auto found = id_of.find(merged_bytes);
    if (found != id_of.end()) {
      c = found->second;
    } else {
      c = int32_t(token_bytes.size());
      token_bytes.push_back(merged_bytes);
      id_of.emplace(merged_bytes, c);
    }
    merges.push_back({a, b});

    std::vector<int32_t> ws = std::move(where[e.key]);
    where.erase(e.key);
    std::sort(ws.begin(), ws.end());
    ws.erase(std::unique(ws.begin(), ws.end()), ws.end());
    touched.clear();
    for (int32_t w : ws) {
      std::vector<int32_t>& sym = words[w];
      bool has = false;
      for (size_t i = 0; i + 1 < sym.size() && !has; ++i) has = sym[i] == a && sym[i + 1] == b;
      if (!has) continue;
      const int64_t f = freq[w];
      // Remove the word's pairs, merge left to right, add its pairs back.
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        uint64_t k = pair_key(sym[i], sym[i + 1]);
        if ((pair_count[k] -= f) == 0) pair_count.erase(k);
        touched.push_back(k);
      }
      std::vector<int32_t> next;
      next.reserve(sym.size());
      for (size_t i = 0; i < sym.size(); ++i) {
        if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
          next.push_back(c);
          ++i;
        } else {
          next.push_back(sym[i]);
        }
      }
      sym = std::move(next);
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        uint64_t k = pair_key(sym[i], sym[i + 1]);
        pair_count[k] += f;
        touched.push_back(k);
        auto& v = where[k];
        if (v.empty() || v.back() != w) v.push_back(w);
      }
    }
    // Pairs whose count went up need a fresh heap entry; those that went down are fixed lazily.
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) {
      auto it = pair_count.find(k);
      if (it != pair_count.end() && it->second > 0) heap.push({it->second, k});
    }
  }

  // 4. tokenizer.json (ordered as HF writes it) and tokenizer_config.json.
  using ojson = nlohmann::ordered_json;
  ojson added = ojson::array();
  for (size_t i = 0; i < specials.size(); ++i) {
    added.push_back({{"id", int(i)}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", int64_t(i) < kSkippedSpecials}});
  }
  ojson vocab = ojson::object();
  for (size_t i = 0; i < token_bytes.size(); ++i)
    vocab[i < specials.size() ? specials[i] : byte_level_encode(token_bytes[i])] = int(i);
  ojson merge_list = ojson::array();
  for (auto& [a, b] : merges) merge_list.push_back(byte_level_encode(token_bytes[a]) + " " + byte_level_encode(token_bytes[b]));
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  const ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  if (o.split_digits) {
    // HF's own spelling of "isolate every digit", as DeepSeek's and Llama's tokenizers write it.
    const ojson split = {{"type", "Split"}, {"pattern", {{"Regex", kDigitPattern}}}, {"behavior", "Isolated"},
                         {"invert", false}};
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", ojson::array({split, byte_level})}};
  } else {
    j["pre_tokenizer"] = byte_level;
  }
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                {"ignore_merges", false}, {"vocab", vocab}, {"merges", merge_list}};
  ojson cfg;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  cfg["bos_token"] = specials[0];
  cfg["eos_token"] = specials[1];
  cfg["pad_token"] = specials[2];
  cfg["unk_token"] = nullptr;
  cfg["add_bos_token"] = false;
  cfg["add_eos_token"] = false;
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["model_max_length"] = 1000000000;

  TrainedTokenizer out;
  out.tokenizer_json = j.dump(2, ' ', false) + "\n";
  out.tokenizer_config_json = cfg.dump(2, ' ', false) + "\n";
  out.vocab_size = int64_t(token_bytes.size());
  out.n_merges = int64_t(merges.size());
  return out;
}

void write_tokenizer_dir(const std::string& dir, const TrainedTokenizer& t) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create directory: " + ec.message());
  write_file_atomic((std::filesystem::path(dir) / "tokenizer.json").string(), t.tokenizer_json);
  write_file_atomic((std::filesystem::path(dir) / "tokenizer_config.json").string(), t.tokenizer_config_json);
}

}  // namespace seek
