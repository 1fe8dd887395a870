// tokenizer.cpp — loading tokenizer.json (or GGUF-style parts), encoding (added tokens, utf8proc
// normalizers, pre-tokenizer regexes, rank-based BPE merges with a per-word cache), decoding and
// streaming decoding. See tokenizer.h for what is supported and the invalid UTF-8 policy.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/tokenizer.h"

#include <pcre2.h>
#include <utf8proc.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "util/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace seek {

// ---------------------------------------------------------------------------------------------
// Byte-level alphabet (GPT-2 bytes_to_unicode): printable bytes map to themselves, the others to
// U+0100 upwards in byte order.

namespace {

struct ByteAlphabet {
  uint32_t byte_to_cp[256];
  std::string byte_to_utf8[256];
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteAlphabet() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_to_cp[b] = printable ? uint32_t(b) : uint32_t(256 + n++);
    }
    for (int b = 0; b < 256; ++b) {
      uint32_t cp = byte_to_cp[b];
      std::string s;
      if (cp < 0x80) {
        s.push_back(char(cp));
      } else {
        s.push_back(char(0xC0 | (cp >> 6)));
        s.push_back(char(0x80 | (cp & 0x3F)));
      }
      byte_to_utf8[b] = s;
      cp_to_byte[cp] = uint8_t(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// Decodes one code point at s[i] of valid UTF-8 (the caller knows it is valid).
uint32_t decode_cp(std::string_view s, size_t& i) {
  uint8_t c = uint8_t(s[i]);
  if (c < 0x80) { ++i; return c; }
  int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

// 0: s[i..] is the start of an invalid sequence; -n: a valid but incomplete prefix of n bytes
// (truncated by the end of s); n > 0: a complete valid sequence of n bytes.
int utf8_classify(std::string_view s, size_t i) {
  uint8_t c = uint8_t(s[i]);
  if (c < 0x80) return 1;
  int len;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) { len = 3; lo = 0xA0; }
  else if (c >= 0xE1 && c <= 0xEC) len = 3;
  else if (c == 0xED) { len = 3; hi = 0x9F; }
  else if (c >= 0xEE && c <= 0xEF) len = 3;
  else if (c == 0xF0) { len = 4; lo = 0x90; }
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) { len = 4; hi = 0x8F; }
  else return 0;
  for (int k = 1; k < len; ++k) {
    if (i + k >= s.size()) return -k;
    uint8_t b = uint8_t(s[i + k]);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
  }
  return len;
}

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_word_byte(char c) { return std::isalnum(uint8_t(c)) || c == '_'; }

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string byte_level_encode(std::string_view bytes) {
  const ByteAlphabet& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += a.byte_to_utf8[uint8_t(c)];
  return out;
}

int utf8_sequence_length(std::string_view s, size_t i) {
  int n = utf8_classify(s, i);
  return n > 0 ? n : 0;
}

// ---------------------------------------------------------------------------------------------
// The loaded tokenizer.

namespace {

struct Regex {
  pcre2_code* code = nullptr;
  Regex() = default;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex() { if (code) pcre2_code_free(code); }
};

enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext };

struct PreStep {
  std::unique_ptr<Regex> re;          // null: no splitting (ByteLevel without use_regex)
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;      // ByteLevel
};

// Byte trie over added tokens' contents, for leftmost-longest matching.
struct TrieNode {
  std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
  int32_t token = -1;                             // index into added tokens
};

struct AddedToken {
  std::string content;  // matched against: the content itself, or its normalized form (normalized)
  int32_t id;
  bool special, lstrip, rstrip, single_word;
  bool normalized;      // matched in the normalized text between the non-normalized added tokens
};

// One normalizer of tokenizer.json (a Sequence is flattened into a list of these).
enum class NormKind { NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Replace, Prepend };
struct NormStep {
  NormKind kind;
  std::unique_ptr<Regex> re;     // Replace with a {"Regex": ...} pattern
  std::string pattern, content;  // Replace: {"String": pattern} -> content; Prepend: content
  bool left = false, right = false;  // Strip
};

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::unique_ptr<Regex> compile_regex(const std::string& pattern, bool literal, const std::string& where) {
  int err = 0;
  PCRE2_SIZE off = 0;
  uint32_t opts = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;  // LITERAL refuses UCP
  auto r = std::make_unique<Regex>();
  r->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err, &off, nullptr);
  if (!r->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error(strfmt("%s: regex does not compile at offset %zu: %s", where.c_str(), size_t(off),
                       reinterpret_cast<const char*>(msg)));
  }
  pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  return r;
}

// A JIT stack and match data per thread, shared by every regex.
struct MatchScratch {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* ctx = nullptr;
  pcre2_match_data* md = nullptr;
  MatchScratch() {
    stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    pcre2_jit_stack_assign(ctx, nullptr, stack);
    md = pcre2_match_data_create(4, nullptr);
  }
  ~MatchScratch() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

}  // namespace

struct Tokenizer::Impl {
  std::string file;                                  // tokenizer.json, for messages
  std::vector<std::string> pieces;                   // [V] vocab string / added content
  std::vector<std::string> bytes;                    // [V] raw bytes written by decode
  std::vector<uint8_t> special;                      // [V]
  std::unordered_map<std::string, int32_t> vocab;    // vocab string -> id
  std::unordered_map<std::string, int32_t> added_by_content;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (a, b) -> (rank, merged id)
  int32_t byte_id[256];
  bool ignore_merges = false;
  std::vector<AddedToken> added;
  std::vector<TrieNode> trie_raw;   // added tokens with normalized = false: matched in the raw text
  std::vector<TrieNode> trie_norm;  // normalized = true: their normalized content, in normalized text
  std::vector<NormStep> norm;       // empty: the identity
  std::vector<PreStep> steps;
  int32_t bos = -1, eos = -1;
  std::string chat_template;

  // Cache of BPE results per pre-token (its raw bytes), in two generations (an approximate LRU):
  // when `cache` reaches kCacheCap entries it becomes `cache_old`; a hit in `cache_old` moves back.
  static constexpr size_t kCacheCap = 1 << 17;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache, cache_old;
  void cache_insert(std::string key, std::vector<int32_t> ids) const;

  void add_added(AddedToken tok);
  void build_tries();
  std::string normalize(std::string_view text) const;
  template <class Gap>
  void split_added(std::string_view text, const std::vector<TrieNode>& trie, std::vector<int32_t>& out, Gap gap) const;
  void pre_tokenize(std::string_view text, size_t step, std::vector<int32_t>& out) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  void bpe_uncached(std::string_view word, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
};

static void add_trie(std::vector<TrieNode>& trie, const std::string& s, int32_t index) {
  if (trie.empty()) trie.emplace_back();
  int32_t node = 0;
  for (char ch : s) {
    uint8_t c = uint8_t(ch);
    auto& nx = trie[node].next;
    auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(c, int32_t(-1)));
    if (it != nx.end() && it->first == c) {
      node = it->second;
    } else {
      int32_t child = int32_t(trie.size());
      nx.insert(it, {c, child});
      trie.emplace_back();
      node = child;
    }
  }
  if (trie[node].token < 0) trie[node].token = index;
}

// ---------------------------------------------------------------------------------------------
// Normalizers (utf8proc). Each step keeps the invalid UTF-8 policy: Unicode steps rewrite the maximal
// valid UTF-8 runs and copy invalid bytes through unchanged.

namespace {

// Applies f(run, out) to each maximal valid UTF-8 run of s; invalid bytes are copied as they are.
template <class F>
std::string map_valid_runs(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  size_t i = 0, run = 0;
  while (i < s.size()) {
    int n = uint8_t(s[i]) < 0x80 ? 1 : utf8_classify(s, i);
    if (n > 0) { i += size_t(n); continue; }
    if (i > run) f(s.substr(run, i - run), out);
    out.push_back(s[i]);
    run = ++i;
  }
  if (i > run) f(s.substr(run, i - run), out);
  return out;
}

void append_cp(uint32_t cp, std::string& out) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_int32_t(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), size_t(n));
}

// Rust's char::is_whitespace (the White_Space property), which HF's Strip uses.
bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

void unicode_form(std::string_view run, utf8proc_option_t opts, std::string& out) {
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                                    utf8proc_ssize_t(run.size()), &dst, utf8proc_option_t(opts | UTF8PROC_STABLE));
  if (n < 0) {
    out.append(run);  // cannot happen on valid UTF-8; keep the text rather than fail
  } else {
    out.append(reinterpret_cast<const char*>(dst), size_t(n));
  }
  std::free(dst);
}

std::string apply_norm(const NormStep& st, std::string_view s) {
  switch (st.kind) {
    case NormKind::NFC: return map_valid_runs(s, [](std::string_view r, std::string& o) { unicode_form(r, UTF8PROC_COMPOSE, o); });
    case NormKind::NFD: return map_valid_runs(s, [](std::string_view r, std::string& o) { unicode_form(r, UTF8PROC_DECOMPOSE, o); });
    case NormKind::NFKC:
      return map_valid_runs(s, [](std::string_view r, std::string& o) {
        unicode_form(r, utf8proc_option_t(UTF8PROC_COMPOSE | UTF8PROC_COMPAT), o);
      });
    case NormKind::NFKD:
      return map_valid_runs(s, [](std::string_view r, std::string& o) {
        unicode_form(r, utf8proc_option_t(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT), o);
      });
    case NormKind::Lowercase:
      return map_valid_runs(s, [](std::string_view r, std::string& o) {
        for (size_t i = 0; i < r.size();) append_cp(uint32_t(utf8proc_tolower(utf8proc_int32_t(decode_cp(r, i)))), o);
      });
    case NormKind::StripAccents:
      return map_valid_runs(s, [](std::string_view r, std::string& o) {
        for (size_t i = 0; i < r.size();) {
          size_t i0 = i;
          uint32_t cp = decode_cp(r, i);
          if (utf8proc_category(utf8proc_int32_t(cp)) != UTF8PROC_CATEGORY_MN) o.append(r.substr(i0, i - i0));
        }
      });
    case NormKind::Strip: {
      // White space is always valid UTF-8, so stepping over whole characters from either end is safe.
      size_t b = 0, e = s.size();
      while (st.left && b < e) {
        int n = utf8_classify(s, b);
        size_t k = b;
        if (n <= 0 || !is_white_space(decode_cp(s, k))) break;
        b = k;
      }
      while (st.right && e > b) {
        size_t k = e - 1;
        while (k > b && (uint8_t(s[k]) & 0xC0) == 0x80 && e - k < 4) --k;  // start of the last character
        if (utf8_classify(s, k) != int(e - k)) break;
        size_t j = k;
        if (!is_white_space(decode_cp(s, j))) break;
        e = k;
      }
      return std::string(s.substr(b, e - b));
    }
    case NormKind::Prepend: return s.empty() ? std::string() : st.content + std::string(s);
    case NormKind::Replace: {
      if (!st.re) {  // literal: every non-overlapping occurrence, left to right
        std::string out;
        size_t i = 0;
        for (size_t p; !st.pattern.empty() && (p = s.find(st.pattern, i)) != std::string_view::npos; i = p + st.pattern.size()) {
          out.append(s.substr(i, p - i));
          out += st.content;
        }
        out.append(s.substr(i));
        return out;
      }
      return map_valid_runs(s, [&](std::string_view r, std::string& o) {
        MatchScratch& sc = scratch();
        size_t pos = 0, prev = 0;
        while (pos <= r.size()) {
          int rc = pcre2_match(st.re->code, reinterpret_cast<PCRE2_SPTR>(r.data()), r.size(), pos, PCRE2_NO_UTF_CHECK, sc.md, sc.ctx);
          if (rc < 0) break;  // no match (or a matching limit): the rest stays as it is
          PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md);
          o.append(r.substr(prev, ov[0] - prev));
          o += st.content;
          prev = ov[1];
          if (ov[1] == ov[0]) {  // an empty match: keep the next character and go on after it
            if (ov[1] >= r.size()) break;
            int n = std::max(utf8_classify(r, ov[1]), 1);
            o.append(r.substr(ov[1], size_t(n)));
            prev = pos = ov[1] + size_t(n);
          } else {
            pos = ov[1];
          }
        }
        if (prev < r.size()) o.append(r.substr(prev));
      });
    }
  }
  return std::string(s);
}

}  // namespace

std::string Tokenizer::Impl::normalize(std::string_view text) const {
  std::string s(text);
  for (const NormStep& st : norm) s = apply_norm(st, s);
  return s;
}

void Tokenizer::Impl::add_added(AddedToken tok) {
  pieces[tok.id] = tok.content;
  bytes[tok.id] = tok.content;
  special[tok.id] = tok.special;
  added_by_content[tok.content] = tok.id;
  added.push_back(std::move(tok));
}

// After the normalizer is known: a normalized token is matched by its normalized content (as HF's
// AddedVocabulary::refresh_added_tokens does).
void Tokenizer::Impl::build_tries() {
  trie_raw.clear();
  trie_norm.clear();
  for (size_t i = 0; i < added.size(); ++i) {
    const AddedToken& a = added[i];
    if (!a.normalized) {
      add_trie(trie_raw, a.content, int32_t(i));
    } else {
      std::string c = normalize(a.content);
      if (!c.empty()) add_trie(trie_norm, c, int32_t(i));
    }
  }
}

// Runs pre-tokenizer steps [step, end) on text, then BPE on each resulting piece.
void Tokenizer::Impl::pre_tokenize(std::string_view text, size_t step, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  if (step == steps.size()) {
    bpe(text, out);
    return;
  }
  const PreStep& ps = steps[step];
  std::string prefixed;
  if (ps.add_prefix_space && text[0] != ' ') {
    prefixed = " ";
    prefixed += text;
    text = prefixed;
  }
  if (!ps.re) {
    pre_tokenize(text, step + 1, out);
    return;
  }
  // Collect (range, is_match) in order, then apply the behavior.
  MatchScratch& sc = scratch();
  size_t pos = 0, prev = 0;
  size_t pending_begin = 0;
  bool has_pending = false;
  auto emit = [&](size_t b, size_t e) { pre_tokenize(text.substr(b, e - b), step + 1, out); };
  // Handles one segment in order: either a regex match or the gap before it.
  size_t merged_begin = 0;
  bool merged_open = false;
  auto segment = [&](size_t b, size_t e, bool is_match) {
    if (b == e) return;
    if (ps.invert) is_match = !is_match;
    switch (ps.behavior) {
      case SplitBehavior::Isolated: emit(b, e); break;
      case SplitBehavior::Removed: if (!is_match) emit(b, e); break;
      case SplitBehavior::MergedWithPrevious:
        // a match joins the piece before it
        if (is_match) {
          if (merged_open) { emit(merged_begin, e); merged_open = false; } else { emit(b, e); }
        } else {
          if (merged_open) emit(merged_begin, b);
          merged_begin = b;
          merged_open = true;
        }
        break;
      case SplitBehavior::MergedWithNext:
        // a match joins the piece after it
        if (is_match) {
          if (has_pending) emit(pending_begin, b);
          pending_begin = b;
          has_pending = true;
        } else {
          if (has_pending) { emit(pending_begin, e); has_pending = false; } else { emit(b, e); }
        }
        break;
    }
  };
  while (pos < text.size()) {
    int rc = pcre2_match(ps.re->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                         PCRE2_NO_UTF_CHECK, sc.md, sc.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error(strfmt("%s: pre_tokenizer regex failed: %s", file.c_str(), reinterpret_cast<const char*>(msg)));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md);
    size_t b = ov[0], e = ov[1];
    if (e == b) {  // empty match: no split; step over one character
      int n = utf8_classify(text, b);
      pos = b + (b < text.size() ? std::max(n, 1) : 1);
      continue;
    }
    segment(prev, b, false);
    segment(b, e, true);
    prev = pos = e;
  }
  segment(prev, text.size(), false);
  if (merged_open) emit(merged_begin, text.size());
  if (has_pending) emit(pending_begin, text.size());
}

void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_id[uint8_t(word[0])]);
    return;
  }
  if (word.size() > 64) {
    bpe_uncached(word, out);
    return;
  }
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
    auto old = cache_old.find(key);
    if (old != cache_old.end()) {
      out.insert(out.end(), old->second.begin(), old->second.end());
      std::vector<int32_t> ids = std::move(old->second);
      cache_old.erase(old);
      cache_insert(std::move(key), std::move(ids));
      return;
    }
  }
  size_t start = out.size();
  bpe_uncached(word, out);
  std::lock_guard<std::mutex> lock(cache_mutex);
  cache_insert(std::move(key), std::vector<int32_t>(out.begin() + start, out.end()));
}

// Called with cache_mutex held.
void Tokenizer::Impl::cache_insert(std::string key, std::vector<int32_t> ids) const {
  if (cache.size() >= kCacheCap) {
    cache_old = std::move(cache);
    cache = {};
  }
  cache.emplace(std::move(key), std::move(ids));
}

// Rank-based BPE: repeatedly merge the adjacent pair of lowest rank (leftmost on ties), with a heap
// over a linked list of symbols.
void Tokenizer::Impl::bpe_uncached(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    auto it = vocab.find(byte_level_encode(word));
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const int n = int(word.size());
  std::vector<int32_t> id(n), next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    id[i] = byte_id[uint8_t(word[i])];
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Cand {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](int i) {
    if (i < 0 || next[i] < 0) return;
    int j = next[i];
    auto it = merges.find((uint64_t(uint32_t(id[i])) << 32) | uint32_t(id[j]));
    if (it != merges.end()) heap.push({it->second.first, i, id[i], id[j], it->second.second});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int i = c.pos;
    if (id[i] != c.left || next[i] < 0 || id[next[i]] != c.right) continue;  // stale
    int j = next[i];
    id[i] = c.merged;
    id[j] = -1;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    consider(prev[i]);
    consider(i);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

// Text without added tokens: cut into valid UTF-8 runs (pre-tokenized) and invalid bytes (one
// pre-token each).
void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  size_t i = 0, run = 0;
  while (i < text.size()) {
    uint8_t c = uint8_t(text[i]);
    if (c < 0x80) { ++i; continue; }
    int n = utf8_classify(text, i);
    if (n > 0) { i += n; continue; }
    pre_tokenize(text.substr(run, i - run), 0, out);
    out.push_back(byte_id[c]);
    run = ++i;
  }
  pre_tokenize(text.substr(run), 0, out);
}

// ---------------------------------------------------------------------------------------------
// Loading.

namespace {

const json& field(const json& j, const char* name, const std::string& where) {
  auto it = j.find(name);
  if (it == j.end()) throw Error(where + ": missing field \"" + name + "\"");
  return *it;
}

bool opt_bool(const json& j, const char* name, bool def, const std::string& where) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) throw Error(where + "." + name + ": expected true or false");
  return it->get<bool>();
}

void read_normalizer(const json& n, const std::string& where, std::vector<NormStep>& out) {
  if (n.is_null()) return;
  std::string type = n.value("type", "");
  if (type == "Sequence") {
    const json& list = field(n, "normalizers", where);
    for (size_t i = 0; i < list.size(); ++i) read_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]", out);
    return;
  }
  NormStep st;
  if (type == "NFC") st.kind = NormKind::NFC;
  else if (type == "NFD") st.kind = NormKind::NFD;
  else if (type == "NFKC") st.kind = NormKind::NFKC;
  else if (type == "NFKD") st.kind = NormKind::NFKD;
  else if (type == "Lowercase") st.kind = NormKind::Lowercase;
  else if (type == "StripAccents") st.kind = NormKind::StripAccents;
  else if (type == "Strip") {
    st.kind = NormKind::Strip;
    st.left = opt_bool(n, "strip_left", true, where);
    st.right = opt_bool(n, "strip_right", true, where);
  } else if (type == "Prepend") {
    st.kind = NormKind::Prepend;
    const json& p = field(n, "prepend", where);
    if (!p.is_string()) throw Error(where + ".prepend: expected a string");
    st.content = p.get<std::string>();
  } else if (type == "Replace") {
    st.kind = NormKind::Replace;
    const json& c = field(n, "content", where);
    if (!c.is_string()) throw Error(where + ".content: expected a string");
    st.content = c.get<std::string>();
    const json& pat = field(n, "pattern", where);
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      st.re = compile_regex(pat["Regex"].get<std::string>(), false, where + ".pattern.Regex");
    } else if (pat.contains("String") && pat["String"].is_string()) {
      st.pattern = pat["String"].get<std::string>();
    } else {
      throw Error(where + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    }
  } else {
    throw Error(where + ": normalizer type \"" + type +
                "\" is not supported (NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Replace, Prepend, Sequence)");
  }
  out.push_back(std::move(st));
}

void read_pre_tokenizer(const json& p, const std::string& where, std::vector<PreStep>& steps) {
  if (p.is_null()) return;
  std::string type = p.value("type", "");
  if (type == "Sequence") {
    const json& list = field(p, "pretokenizers", where);
    for (size_t i = 0; i < list.size(); ++i)
      read_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", steps);
  } else if (type == "Split") {
    PreStep s;
    const json& pat = field(p, "pattern", where);
    if (pat.contains("Regex")) {
      s.re = compile_regex(pat["Regex"].get<std::string>(), false, where + ".pattern.Regex");
    } else if (pat.contains("String")) {
      s.re = compile_regex(pat["String"].get<std::string>(), true, where + ".pattern.String");
    } else {
      throw Error(where + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    }
    std::string b = p.value("behavior", "Isolated");
    if (b == "Isolated") s.behavior = SplitBehavior::Isolated;
    else if (b == "Removed") s.behavior = SplitBehavior::Removed;
    else if (b == "MergedWithPrevious") s.behavior = SplitBehavior::MergedWithPrevious;
    else if (b == "MergedWithNext") s.behavior = SplitBehavior::MergedWithNext;
    else throw Error(where + ".behavior: \"" + b + "\" is not supported (Isolated, Removed, MergedWithPrevious, MergedWithNext)");
    s.invert = opt_bool(p, "invert", false, where);
    steps.push_back(std::move(s));
  } else if (type == "ByteLevel") {
    PreStep s;
    s.add_prefix_space = opt_bool(p, "add_prefix_space", true, where);
    if (opt_bool(p, "use_regex", true, where)) s.re = compile_regex(kGpt2Pattern, false, where + " (GPT-2 regex)");
    steps.push_back(std::move(s));
  } else {
    throw Error(where + ": pre_tokenizer type \"" + type + "\" is not supported (Sequence, Split, ByteLevel)");
  }
}

// bos_token / eos_token: a string or {"content": ...}; null or absent -> "".
std::string config_token(const json& cfg, const char* name, const std::string& where) {
  auto it = cfg.find(name);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  throw Error(where + ": field \"" + name + "\" must be a string or an object with \"content\"");
}

// Sizes the per-id tables for ids [0, V).
void init_tables(Tokenizer::Impl& t, size_t V) {
  t.pieces.assign(V, "");
  t.bytes.assign(V, "");
  t.special.assign(V, 0);
}

// A vocabulary entry: its byte-level string and the raw bytes it decodes to. Each character maps back
// to a byte; a character outside the alphabet (as in "<｜begin▁of▁sentence｜>") is kept as its UTF-8,
// as HF's decoder does.
void set_vocab_piece(Tokenizer::Impl& t, int32_t id, const std::string& p) {
  const ByteAlphabet& a = alphabet();
  t.pieces[id] = p;
  t.vocab.emplace(p, id);
  std::string& b = t.bytes[id];
  b.clear();
  size_t k = 0;
  while (k < p.size()) {
    size_t k0 = k;
    int n = utf8_classify(p, k);
    if (n <= 0) { b.push_back(p[k++]); continue; }
    uint32_t cp = decode_cp(p, k);
    auto f = a.cp_to_byte.find(cp);
    if (f != a.cp_to_byte.end()) b.push_back(char(f->second));
    else b.append(p, k0, k - k0);
  }
}

void find_byte_ids(Tokenizer::Impl& t, const std::string& where) {
  const ByteAlphabet& a = alphabet();
  for (int c = 0; c < 256; ++c) {
    auto it = t.vocab.find(a.byte_to_utf8[c]);
    if (it == t.vocab.end())
      throw Error(strfmt("%s: no token for byte 0x%02X (\"%s\"); byte-level BPE needs all 256", where.c_str(), c,
                         a.byte_to_utf8[c].c_str()));
    t.byte_id[c] = it->second;
  }
}

// Merge of rank r: "a b" as one string.
void add_merge(Tokenizer::Impl& t, const std::string& left, const std::string& right, size_t r, const std::string& where) {
  auto il = t.vocab.find(left), ir = t.vocab.find(right), im = t.vocab.find(left + right);
  if (il == t.vocab.end() || ir == t.vocab.end() || im == t.vocab.end())
    throw Error(where + "[" + std::to_string(r) + "]: \"" + left + "\", \"" + right + "\" or their merge is not in the vocab");
  uint64_t key = (uint64_t(uint32_t(il->second)) << 32) | uint32_t(ir->second);
  t.merges.emplace(key, std::make_pair(int32_t(r), im->second));  // first (lowest rank) wins
}

void split_merge(const std::string& s, size_t r, const std::string& where, std::string& left, std::string& right) {
  size_t sp = s.find(' ');
  if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
    throw Error(where + "[" + std::to_string(r) + "]: \"" + s + "\" is not two pieces separated by one space");
  left = s.substr(0, sp);
  right = s.substr(sp + 1);
}

// tokenizer_config.json's chat_template: a string, or a list of {"name", "template"} (the "default" one).
std::string config_chat_template(const json& cfg) {
  auto it = cfg.find("chat_template");
  if (it == cfg.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array())
    for (const json& e : *it)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return e["template"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  std::string file = path, config_file;
  if (fs::is_directory(path)) {
    file = (fs::path(path) / "tokenizer.json").string();
    config_file = (fs::path(path) / "tokenizer_config.json").string();
  } else {
    config_file = (fs::path(path).parent_path() / "tokenizer_config.json").string();
  }
  if (!fs::exists(file)) throw Error(file + ": no such file (expected a tokenizer directory or tokenizer.json)");
  json j;
  try {
    j = json::parse(read_file_text(file));
  } catch (const json::exception& e) {
    throw Error(file + ": not valid JSON: " + e.what());
  }
  auto impl = std::make_shared<Impl>();
  Impl& t = *impl;
  t.file = file;
  try {
    const json& model = field(j, "model", file);
    const std::string mw = file + ": model";
    std::string type = model.value("type", "BPE");
    if (type != "BPE") throw Error(mw + ".type: \"" + type + "\" is not supported (only BPE)");
    if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0)
      throw Error(mw + ".dropout: BPE dropout is not supported");
    for (const char* f : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(f) && !model[f].is_null() && !model[f].get<std::string>().empty())
        throw Error(mw + "." + f + ": not supported (byte-level BPE has none)");
    }
    if (opt_bool(model, "byte_fallback", false, mw)) throw Error(mw + ".byte_fallback: not supported");
    t.ignore_merges = opt_bool(model, "ignore_merges", false, mw);

    // Vocabulary.
    const json& vocab = field(model, "vocab", mw);
    if (!vocab.is_object()) throw Error(mw + ".vocab: expected an object {piece: id}");
    int32_t max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer()) throw Error(mw + ".vocab[\"" + it.key() + "\"]: expected an integer id");
      int64_t id = it.value().get<int64_t>();
      if (id < 0 || id >= (int64_t(1) << 30)) throw Error(mw + ".vocab[\"" + it.key() + "\"]: id out of range");
      max_id = std::max(max_id, int32_t(id));
    }
    const json& added = j.contains("added_tokens") && !j["added_tokens"].is_null() ? j["added_tokens"] : json::array();
    for (size_t i = 0; i < added.size(); ++i) {
      int64_t id = field(added[i], "id", file + ": added_tokens[" + std::to_string(i) + "]").get<int64_t>();
      if (id < 0 || id >= (int64_t(1) << 30)) throw Error(file + ": added_tokens[" + std::to_string(i) + "].id out of range");
      max_id = std::max(max_id, int32_t(id));
    }
    init_tables(t, size_t(max_id + 1));
    t.vocab.reserve(vocab.size() * 2);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) set_vocab_piece(t, it.value().get<int32_t>(), it.key());
    find_byte_ids(t, mw + ".vocab");

    // Merges.
    const json& merges = field(model, "merges", mw);
    if (!merges.is_array()) throw Error(mw + ".merges: expected an array");
    t.merges.reserve(merges.size() * 2);
    for (size_t r = 0; r < merges.size(); ++r) {
      const json& m = merges[r];
      std::string left, right;
      if (m.is_string()) {
        split_merge(m.get_ref<const std::string&>(), r, mw + ".merges", left, right);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        throw Error(mw + ".merges[" + std::to_string(r) + "]: expected \"a b\" or [\"a\", \"b\"]");
      }
      add_merge(t, left, right, r, mw + ".merges");
    }

    // Added tokens.
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string aw = file + ": added_tokens[" + std::to_string(i) + "]";
      const json& at = added[i];
      AddedToken tok;
      tok.id = at["id"].get<int32_t>();
      const json& content = field(at, "content", aw);
      if (!content.is_string() || content.get<std::string>().empty()) throw Error(aw + ".content: expected a non-empty string");
      tok.content = content.get<std::string>();
      tok.special = opt_bool(at, "special", false, aw);
      tok.lstrip = opt_bool(at, "lstrip", false, aw);
      tok.rstrip = opt_bool(at, "rstrip", false, aw);
      tok.single_word = opt_bool(at, "single_word", false, aw);
      // HF's AddedToken default when the field is absent: special tokens are not normalized, others are.
      tok.normalized = opt_bool(at, "normalized", !tok.special, aw);
      t.add_added(std::move(tok));
    }

    // Normalizer (then the added tokens' tries, which hold normalized contents), pre-tokenizer, decoder.
    if (j.contains("normalizer")) read_normalizer(j["normalizer"], file + ": normalizer", t.norm);
    t.build_tries();
    if (j.contains("pre_tokenizer")) read_pre_tokenizer(j["pre_tokenizer"], file + ": pre_tokenizer", t.steps);
    if (j.contains("decoder") && !j["decoder"].is_null()) {
      std::string d = j["decoder"].value("type", "");
      if (d != "ByteLevel") throw Error(file + ": decoder type \"" + d + "\" is not supported (only ByteLevel)");
    }
  } catch (const json::exception& e) {
    throw Error(file + ": unexpected JSON type: " + e.what());
  }

  // tokenizer_config.json: bos / eos.
  if (fs::exists(config_file)) {
    json cfg;
    try {
      cfg = json::parse(read_file_text(config_file));
    } catch (const json::exception& e) {
      throw Error(config_file + ": not valid JSON: " + e.what());
    }
    auto lookup = [&](const char* name) -> int32_t {
      std::string s = config_token(cfg, name, config_file);
      if (s.empty()) return -1;
      auto it = t.added_by_content.find(s);
      if (it != t.added_by_content.end()) return it->second;
      auto iv = t.vocab.find(s);
      if (iv != t.vocab.end()) return iv->second;
      throw Error(config_file + ": " + name + " \"" + s + "\" is not a token of " + file);
    };
    t.bos = lookup("bos_token");
    t.eos = lookup("eos_token");
    t.chat_template = config_chat_template(cfg);
  }
  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

// ---------------------------------------------------------------------------------------------
// A tokenizer from GGUF-style parts.

namespace {

const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GGUF tokenizer.ggml.pre names and the pre-tokenizer regexes llama.cpp (src/llama-vocab.cpp) applies
// for them, one after the other (each a Split, Isolated), then ByteLevel without its own regex.
// The Llama 3 and Qwen2 regexes are their tokenizer.json's (llama.cpp spells (?i:...) out as
// '[sS]...'; the same language). gpt-2 uses GPT-2's own regex with its final "\s+" (llama.cpp's list
// omits it, but its hand-written GPT-2 splitter behaves as if it were there).
struct PrePreset {
  std::vector<std::string> names;
  std::vector<std::string> regexes;
  bool nfc = false;            // Qwen2's tokenizer.json has an NFC normalizer (llama.cpp does not apply it)
  bool ignore_merges = false;  // Llama 3 (llama.cpp sets it for this pre-tokenizer)
};

const std::vector<PrePreset>& pre_presets() {
  static const std::vector<PrePreset> presets = {
      {{"default"},
       {R"([\p{P}\$\+<=>\^~\|]+)", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))", R"(\p{N}+)",
        "[0-9][0-9][0-9]"}},
      {{"gpt-2"}, {kGpt2Pattern}},
      // single digits, then GPT-2's regex: what seek's own BPE trainer writes (model/bpe_trainer.h)
      {{"smollm"}, {R"(\p{N})", kGpt2Pattern}},
      {{"llama-bpe", "llama3", "llama-v3"}, {kLlama3Pattern}, false, true},
      {{"qwen2", "deepseek-r1-qwen"}, {kQwen2Pattern}, true},
      {{"deepseek-v3"},
       {R"(\p{N}{1,3})", "[一-龥぀-ゟ゠-ヿ]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|"
        "\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}},
      {{"deepseek-llm"},
       {"[\r\n]",
        // Greek Extended and Letterlike Symbols escaped: several of their letters are singletons that an
        // NFC-normalizing copy of llama.cpp's list would silently change (U+1F7D, U+1FBE, U+2126, ...).
        "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
        "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}"
        "\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}-\\x{2184}Ⰰ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-"
        "ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
        "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
      {{"deepseek-coder"}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
  };
  return presets;
}

}  // namespace

Tokenizer Tokenizer::from_parts(const TokenizerParts& p, const std::string& source) {
  const PrePreset* preset = nullptr;
  std::string known;
  for (const PrePreset& pp : pre_presets())
    for (const std::string& n : pp.names) {
      if (n == p.pre) preset = &pp;
      known += (known.empty() ? "" : ", ") + n;
    }
  if (!preset) throw Error(source + ": tokenizer.ggml.pre \"" + p.pre + "\" is not a known pre-tokenizer (" + known + ")");
  if (p.tokens.empty()) throw Error(source + ": tokenizer.ggml.tokens is empty");
  if (!p.token_types.empty() && p.token_types.size() != p.tokens.size())
    throw Error(strfmt("%s: tokenizer.ggml.token_type has %zu entries for %zu tokens", source.c_str(), p.token_types.size(),
                       p.tokens.size()));
  auto impl = std::make_shared<Impl>();
  Impl& t = *impl;
  t.file = source;
  t.ignore_merges = p.ignore_merges || preset->ignore_merges;
  init_tables(t, p.tokens.size());
  t.vocab.reserve(p.tokens.size() * 2);
  for (size_t id = 0; id < p.tokens.size(); ++id) {
    const int32_t type = p.token_types.empty() ? 1 : p.token_types[id];
    const std::string& s = p.tokens[id];
    if (s.empty()) continue;  // an unused id
    if (type == 3 || type == 4) {
      // control -> a special added token; user defined -> a plain added token. Both are matched in
      // the raw text (normalized = false), as llama.cpp matches them.
      t.add_added({s, int32_t(id), type == 3, false, false, false, false});
    } else if (type >= 1 && type <= 6) {
      set_vocab_piece(t, int32_t(id), s);
    } else {
      throw Error(strfmt("%s: tokenizer.ggml.token_type[%zu] = %d is not a GGUF token type (1..6)", source.c_str(), id,
                         int(type)));
    }
  }
  find_byte_ids(t, source + ": tokenizer.ggml.tokens");
  t.merges.reserve(p.merges.size() * 2);
  std::string left, right;
  for (size_t r = 0; r < p.merges.size(); ++r) {
    split_merge(p.merges[r], r, source + ": tokenizer.ggml.merges", left, right);
    add_merge(t, left, right, r, source + ": tokenizer.ggml.merges");
  }
  if (preset->nfc) t.norm.push_back(NormStep{NormKind::NFC, nullptr, "", ""});
  t.build_tries();
  for (const std::string& re : preset->regexes) {
    PreStep s;
    s.re = compile_regex(re, false, source + ": pre-tokenizer \"" + p.pre + "\"");
    t.steps.push_back(std::move(s));
  }
  t.steps.emplace_back();  // ByteLevel, no regex of its own, no prefix space
  for (auto [name, id] : {std::pair<const char*, int32_t>{"bos", p.bos_id}, {"eos", p.eos_id}})
    if (id < -1 || id >= int32_t(p.tokens.size()))
      throw Error(strfmt("%s: tokenizer.ggml.%s_token_id = %d is outside the %zu tokens", source.c_str(), name, int(id),
                         p.tokens.size()));
  t.bos = p.bos_id;
  t.eos = p.eos_id;
  t.chat_template = p.chat_template;
  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding.

namespace {
// A default-constructed Tokenizer has no vocabulary: using it is an Error, not a crash.
const Tokenizer::Impl& loaded(const std::shared_ptr<const Tokenizer::Impl>& p) {
  if (!p) throw Error("tokenizer used before Tokenizer::load");
  return *p;
}
}  // namespace

// Leftmost-longest matching of the added tokens in `trie` (HF's Aho-Corasick, MatchKind::LeftmostLongest);
// each matched token is appended to out and the text between them goes to gap().
template <class Gap>
void Tokenizer::Impl::split_added(std::string_view text, const std::vector<TrieNode>& trie, std::vector<int32_t>& out,
                                  Gap gap) const {
  if (trie.empty()) {
    gap(text);
    return;
  }
  size_t seg = 0, i = 0;
  const size_t n = text.size();
  while (i < n) {
    // Longest added token starting at i.
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t k = i; k < n; ++k) {
      const auto& nx = trie[node].next;
      uint8_t c = uint8_t(text[k]);
      auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(c, int32_t(-1)));
      if (it == nx.end() || it->first != c) break;
      node = it->second;
      if (trie[node].token >= 0) {
        const AddedToken& a = added[trie[node].token];
        bool ok = !a.single_word || ((i == 0 || !is_word_byte(text[i - 1])) && (k + 1 == n || !is_word_byte(text[k + 1])));
        if (ok) { best = trie[node].token; best_end = k + 1; }
      }
    }
    if (best < 0) { ++i; continue; }
    const AddedToken& a = added[best];
    size_t b = i, e = best_end;
    if (a.lstrip) while (b > seg && is_ascii_space(text[b - 1])) --b;
    if (a.rstrip) while (e < n && is_ascii_space(text[e])) ++e;
    gap(text.substr(seg, b - seg));
    out.push_back(a.id);
    seg = i = e;
  }
  gap(text.substr(seg));
}

// As HF's AddedVocabulary::extract_and_normalize: the non-normalized added tokens are found in the raw
// text; each piece between them is normalized, the normalized added tokens are found in that, and what
// is left is pre-tokenized and encoded.
std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  const Impl& t = loaded(impl_);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos) {
    if (t.bos < 0) throw Error(t.file + ": add_bos requested but the tokenizer has no bos_token (tokenizer_config.json)");
    out.push_back(t.bos);
  }
  auto plain = [&](std::string_view piece) { t.encode_plain(piece, out); };
  t.split_added(text, t.trie_raw, out, [&](std::string_view gap) {
    if (t.norm.empty()) {
      t.split_added(gap, t.trie_norm, out, plain);
    } else {
      const std::string normalized = t.normalize(gap);
      t.split_added(normalized, t.trie_norm, out, plain);
    }
  });
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Impl& t = loaded(impl_);
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= t.bytes.size())
      throw Error(strfmt("token id %d is outside the vocabulary [0, %zu) of %s", id, t.bytes.size(), t.file.c_str()));
    if (skip_special && t.special[id]) continue;
    out += t.bytes[id];
  }
  return out;
}

std::string_view Tokenizer::piece(int32_t id) const {
  const Impl& t = loaded(impl_);
  if (id < 0 || size_t(id) >= t.pieces.size())
    throw Error(strfmt("token id %d is outside the vocabulary [0, %zu) of %s", id, t.pieces.size(), t.file.c_str()));
  return t.pieces[id];
}

std::string_view Tokenizer::bytes(int32_t id) const {
  const Impl& t = loaded(impl_);
  if (id < 0 || size_t(id) >= t.bytes.size())
    throw Error(strfmt("token id %d is outside the vocabulary [0, %zu) of %s", id, t.bytes.size(), t.file.c_str()));
  return t.bytes[id];
}

bool Tokenizer::is_special(int32_t id) const {
  const Impl& t = loaded(impl_);
  return id >= 0 && size_t(id) < t.special.size() && t.special[id];
}

int32_t Tokenizer::token_id(std::string_view token) const {
  const Impl& t = loaded(impl_);
  std::string s(token);
  auto it = t.added_by_content.find(s);
  if (it != t.added_by_content.end()) return it->second;
  auto iv = t.vocab.find(s);
  return iv != t.vocab.end() ? iv->second : -1;
}

int32_t Tokenizer::bos_id() const { return loaded(impl_).bos; }
const std::string& Tokenizer::chat_template() const { return loaded(impl_).chat_template; }
int32_t Tokenizer::eos_id() const { return loaded(impl_).eos; }
int64_t Tokenizer::vocab_size() const { return int64_t(loaded(impl_).pieces.size()); }

// ---------------------------------------------------------------------------------------------
// Streaming decoding.

StreamDecoder::StreamDecoder(const Tokenizer& t, bool skip_special) : tok_(&t), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_->is_special(id)) {
    (void)tok_->bytes(id);  // still validates the id
    return drain(false);
  }
  pending_ += tok_->bytes(id);
  return drain(false);
}

std::string StreamDecoder::flush() { return drain(true); }

// Emits every complete character of pending_; an invalid subpart becomes U+FFFD; a trailing
// incomplete prefix is kept (or, when final, becomes U+FFFD).
std::string StreamDecoder::drain(bool final) {
  static const char kReplacement[] = "\xEF\xBF\xBD";
  std::string out;
  size_t i = 0;
  const std::string_view s = pending_;
  while (i < s.size()) {
    int n = utf8_classify(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else if (n < 0) {  // valid prefix cut by the end
      if (!final) break;
      out += kReplacement;
      i = s.size();
    } else {
      // Maximal invalid subpart: a lead byte followed by the continuation bytes it accepts.
      out += kReplacement;
      size_t k = i + 1;
      // advance over bytes that were a valid prefix of the sequence begun at i
      uint8_t c = uint8_t(s[i]);
      if (c >= 0xC2 && c <= 0xF4) {
        std::string_view head = s.substr(i, std::min<size_t>(4, s.size() - i));
        for (size_t len = head.size(); len > 1; --len) {
          if (utf8_classify(head.substr(0, len), 0) < 0) { k = i + len; break; }
        }
      }
      i = k;
    }
  }
  pending_.erase(0, i);
  return out;
}

}  // namespace seek
