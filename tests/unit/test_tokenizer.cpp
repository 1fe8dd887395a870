// test_tokenizer.cpp — the byte-level BPE tokenizer: DeepSeek-V3's golden ids (tests/data/tokenizer/,
// made by an independent JavaScript implementation), round trips on random mixed-script text, the
// invalid UTF-8 policy, the streaming decoder, loader errors, and the BPE trainer.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>
#include <sys/wait.h>

#include "model/bpe_trainer.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "util/error.h"

using json = nlohmann::json;

namespace seek {
namespace {

const Tokenizer& deepseek() {
  static const Tokenizer t = Tokenizer::load(test::data_path("data/tokenizer"));
  return t;
}

json golden() {
  std::ifstream in(test::data_path("data/tokenizer/golden.json"));
  return json::parse(in);
}

TEST(Tokenizer, DeepSeekV3GoldenIds) {
  const Tokenizer& t = deepseek();
  json g = golden();
  int cases = 0;
  for (auto& [name, c] : g["cases"].items()) {
    std::string text = c["text"];
    auto ids = t.encode(text);
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>()) << name;
    EXPECT_EQ(t.encode(text, true), c["ids_with_bos"].get<std::vector<int32_t>>()) << name;
    auto pieces = c["pieces"].get<std::vector<std::string>>();
    for (size_t i = 0; i < ids.size() && i < pieces.size(); ++i) EXPECT_EQ(t.piece(ids[i]), pieces[i]) << name << " #" << i;
    EXPECT_EQ(t.decode(ids), text) << name;
    ++cases;
  }
  EXPECT_GE(cases, 30);
}

// 900 random mixed-script texts, ids from the same JavaScript implementation (tests/data/tokenizer/README.md).
TEST(Tokenizer, DeepSeekV3GoldenRandomTexts) {
  const Tokenizer& t = deepseek();
  std::ifstream in(test::data_path("data/tokenizer/golden_random.json"));
  json g = json::parse(in);
  int bad = 0;
  for (auto& c : g["cases"]) {
    std::string text = c["text"];
    auto ids = t.encode(text);
    if (ids != c["ids"].get<std::vector<int32_t>>() && bad++ < 5) ADD_FAILURE() << "ids differ for " << json(text).dump();
    EXPECT_EQ(t.decode(ids), text);
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(g["cases"].size(), 900u);
}

TEST(Tokenizer, DeepSeekV3Metadata) {
  const Tokenizer& t = deepseek();
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.vocab_size(), 128815);
  EXPECT_EQ(t.token_id("<｜begin▁of▁sentence｜>"), 0);
  EXPECT_EQ(t.token_id("<｜User｜>"), 128803);
  EXPECT_EQ(t.token_id("Ġworld"), 2058);
  EXPECT_EQ(t.token_id("no such token here"), -1);
  EXPECT_TRUE(t.is_special(0));
  EXPECT_FALSE(t.is_special(128803));  // added but not special
  EXPECT_FALSE(t.is_special(2058));
  EXPECT_EQ(t.piece(2058), "Ġworld");
  EXPECT_EQ(t.decode({0, 19923, 1}, true), "Hello");
  EXPECT_EQ(t.decode({0, 19923, 128803}, true), "Hello<｜User｜>");
  EXPECT_THROW(t.decode({200000}), Error);
  EXPECT_THROW(t.piece(-1), Error);
  Tokenizer empty;
  EXPECT_THROW(empty.encode("x"), Error);
}

// Random strings from pieces of many scripts, whitespace runs, digits and emoji (ZWJ sequences).
std::string random_text(std::mt19937& rng, int parts) {
  static const std::vector<std::string> atoms = {
      "hello", "World", " the", "  ", "\t", "\n", "\r\n", "\n\n\n", "   ", "0", "42", "3.14159", "1234567",
      "你好", "世界", "深度求索", "こんにちは", "カタカナ", "안녕하세요", "Привет", "мир", "مرحبا", "بالعالم",
      "नमस्ते", "दुनिया", "สวัสดี", "🚀", "😶‍🌫️", "👨‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🇨🇳", "é", "e\u0301",
      "Z̷͑a͒l͓g͔o", "'s", "'RE", "don't", "!!", "?", ".", ",", "{", "}", "()", "<", ">", "<think>", "</think>",
      "<｜User｜>", "<｜begin▁of▁sentence｜>", "\u200b", "\ufeff", "ＡＢＣ", "∀x∈ℝ", "x²", "_", "-", "==", "//",
      "\xc2\xa0", "\u3000", "\u2028", "a", "b", "Q"};
  std::string s;
  std::uniform_int_distribution<size_t> pick(0, atoms.size() - 1);
  std::uniform_int_distribution<int> cp_kind(0, 9);
  for (int i = 0; i < parts; ++i) {
    if (cp_kind(rng) == 0) {
      // a random code point from the whole range (no surrogates)
      uint32_t cp = std::uniform_int_distribution<uint32_t>(1, 0x10FFFF)(rng);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x4E00;
      if (cp < 0x80) s += char(cp);
      else if (cp < 0x800) { s += char(0xC0 | (cp >> 6)); s += char(0x80 | (cp & 0x3F)); }
      else if (cp < 0x10000) { s += char(0xE0 | (cp >> 12)); s += char(0x80 | ((cp >> 6) & 0x3F)); s += char(0x80 | (cp & 0x3F)); }
      else { s += char(0xF0 | (cp >> 18)); s += char(0x80 | ((cp >> 12) & 0x3F)); s += char(0x80 | ((cp >> 6) & 0x3F)); s += char(0x80 | (cp & 0x3F)); }
    } else {
      s += atoms[pick(rng)];
    }
  }
  return s;
}

TEST(Tokenizer, RoundTripRandomMixedScripts) {
  const Tokenizer& t = deepseek();
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 10000; ++iter) {
    std::string s = random_text(rng, 1 + iter % 40);
    auto ids = t.encode(s);
    ASSERT_EQ(t.decode(ids), s) << "iteration " << iter;
  }
}

TEST(Tokenizer, EncodeFromSeveralThreadsAtOnce) {
  const Tokenizer& t = deepseek();
  std::mt19937 rng(3);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back(random_text(rng, 30));
  std::vector<std::vector<int32_t>> expected;
  for (auto& s : texts) expected.push_back(t.encode(s));
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = 0; i < texts.size(); ++i) bad[k] += t.encode(texts[(i + k * 37) % texts.size()]) != expected[(i + k * 37) % texts.size()];
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

TEST(Tokenizer, InvalidUtf8BytesRoundTripExactly) {
  // Policy (tokenizer.h): invalid bytes become their own byte-level tokens; decode returns them as is.
  const Tokenizer& t = deepseek();
  const std::vector<std::string> cases = {"\xff", "abc\xff" "def", "\xc3", "caf\xc3", "\xe4\xbd", "\xe4\xbd" "a",
                                          "\xed\xa0\x80", "\xc0\xaf", "\xf5\x80\x80\x80", "x\x80\x80y", "\xf0\x9f\x9a"};
  for (const std::string& s : cases) {
    auto ids = t.encode(s);
    EXPECT_EQ(t.decode(ids), s);
  }
  // Each invalid byte is exactly its byte token.
  auto ids = t.encode("a\xff" "b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(t.bytes(ids[1]), "\xff");
  // Random bytes.
  std::mt19937 rng(7);
  for (int iter = 0; iter < 500; ++iter) {
    std::string s(1 + iter % 50, '\0');
    for (char& c : s) c = char(rng());
    ASSERT_EQ(t.decode(t.encode(s)), s);
  }
}

std::string stream_all(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special = false) {
  StreamDecoder d(t, skip_special);
  std::string out;
  for (int32_t id : ids) out += d.push(id);
  out += d.flush();
  return out;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    int n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

TEST(StreamDecoder, NeverEmitsHalfACharacter) {
  const Tokenizer& t = deepseek();
  // Byte tokens of "世" (E4 B8 96) one at a time: nothing until the last.
  std::string shi = "世";
  StreamDecoder d(t);
  EXPECT_EQ(d.push(t.token_id(byte_level_encode(shi.substr(0, 1)))), "");
  EXPECT_EQ(d.push(t.token_id(byte_level_encode(shi.substr(1, 1)))), "");
  EXPECT_EQ(d.push(t.token_id(byte_level_encode(shi.substr(2, 1)))), "世");
  EXPECT_EQ(d.flush(), "");
  // Emoji whose bytes the BPE splits across tokens; every chunk must be valid UTF-8.
  std::mt19937 rng(99);
  for (int iter = 0; iter < 300; ++iter) {
    std::string s = random_text(rng, 1 + iter % 30);
    auto ids = t.encode(s);
    StreamDecoder sd(t);
    std::string out;
    for (int32_t id : ids) {
      std::string chunk = sd.push(id);
      ASSERT_TRUE(valid_utf8(chunk)) << iter;
      out += chunk;
    }
    out += sd.flush();
    ASSERT_EQ(out, t.decode(ids)) << iter;
  }
  // skip_special matches decode(skip_special).
  auto ids = t.encode("<｜begin▁of▁sentence｜>Hi 🚀<｜end▁of▁sentence｜>");
  EXPECT_EQ(stream_all(t, ids, true), t.decode(ids, true));
  EXPECT_EQ(stream_all(t, ids, true), "Hi 🚀");
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  const Tokenizer& t = deepseek();
  auto byte_tok = [&](uint8_t b) { return t.token_id(byte_level_encode(std::string(1, char(b)))); };
  // A lone continuation byte, then "a".
  EXPECT_EQ(stream_all(t, {byte_tok(0x80), byte_tok('a')}), "\xEF\xBF\xBD" "a");
  // A truncated 3-byte sequence followed by "a": one U+FFFD for the maximal subpart.
  EXPECT_EQ(stream_all(t, {byte_tok(0xE4), byte_tok(0xBD), byte_tok('a')}), "\xEF\xBF\xBD" "a");
  // Cut off at the end: flush gives one U+FFFD.
  StreamDecoder d(t);
  EXPECT_EQ(d.push(byte_tok('x')), "x");
  EXPECT_EQ(d.push(byte_tok(0xF0)), "");
  EXPECT_EQ(d.push(byte_tok(0x9F)), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");
}

TEST(Tokenizer, LoaderRefusesWhatItDoesNotSupport) {
  test::TempDir dir;
  auto base = [] {
    json j;
    json vocab = json::object();
    int id = 0;
    for (int b = 0; b < 256; ++b) vocab[byte_level_encode(std::string(1, char(b)))] = id++;
    vocab["ab"] = id++;
    j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b"})}};
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    j["decoder"] = {{"type", "ByteLevel"}};
    return j;
  };
  auto expect_error = [&](const json& j, const std::string& needle) {
    test::write_text(dir / "tokenizer.json", j.dump());
    try {
      Tokenizer::load(dir.path.string());
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  // The base loads, with both merge formats.
  test::write_text(dir / "tokenizer.json", base().dump());
  EXPECT_EQ(Tokenizer::load(dir.path.string()).encode("abab"), (std::vector<int32_t>{256, 256}));
  json pairs = base();
  pairs["model"]["merges"] = json::array({json::array({"a", "b"})});
  test::write_text(dir / "tokenizer.json", pairs.dump());
  EXPECT_EQ(Tokenizer::load(dir / "tokenizer.json").encode("xab"), (std::vector<int32_t>{'x', 256}));

  json j = base();
  j["model"]["type"] = "WordPiece";
  expect_error(j, "model.type");
  j = base();
  j["normalizer"] = {{"type", "BertNormalizer"}};  // NFC, NFKC, ... are read (test_tokenizer_students.cpp)
  expect_error(j, "normalizer");
  j = base();
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect_error(j, "pre_tokenizer");
  j = base();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error(j, "pattern.Regex");
  j = base();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Contiguous"}};
  expect_error(j, "behavior");
  j = base();
  j["model"]["merges"] = json::array({"a b c"});
  expect_error(j, "merges[0]");
  j = base();
  j["model"]["merges"] = json::array({"a zz"});
  expect_error(j, "merges[0]");
  j = base();
  j["model"]["vocab"].erase("a");
  expect_error(j, "byte 0x61");
  j = base();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error(j, "decoder");
  test::write_text(dir / "tokenizer.json", "{not json");
  EXPECT_THROW(Tokenizer::load(dir.path.string()), Error);
  EXPECT_THROW(Tokenizer::load(dir / "missing"), Error);
}

// Split behaviors, observed through whether "a b" can merge: vocab is the bytes plus "ab" (id 256).
TEST(Tokenizer, SplitBehaviorsAndPrefixSpace) {
  test::TempDir dir;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_encode(std::string(1, char(b)))] = b;
  vocab["ab"] = 256;
  vocab["Ġa"] = 257;
  auto load = [&](const json& pre) {
    json j;
    j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b", "Ġ a"})}};
    j["pre_tokenizer"] = pre;
    test::write_text(dir / "tokenizer.json", j.dump());
    return Tokenizer::load(dir.path.string());
  };
  auto split = [](const char* pattern, const char* behavior, bool invert) {
    return json{{"type", "Split"}, {"pattern", {{"String", pattern}}}, {"behavior", behavior}, {"invert", invert}};
  };
  using V = std::vector<int32_t>;
  const int a = 'a', b = 'b', ab = 256;
  EXPECT_EQ(load(nullptr).encode("abab"), (V{ab, ab}));
  EXPECT_EQ(load(split("b", "Isolated", false)).encode("abab"), (V{a, b, a, b}));
  EXPECT_EQ(load(split("b", "Removed", false)).encode("abab"), (V{a, a}));
  EXPECT_EQ(load(split("b", "Removed", true)).encode("abab"), (V{b, b}));
  EXPECT_EQ(load(split("b", "MergedWithPrevious", false)).encode("abab"), (V{ab, ab}));
  EXPECT_EQ(load(split("a", "MergedWithPrevious", false)).encode("abab"), (V{a, b, a, b}));
  EXPECT_EQ(load(split("a", "MergedWithNext", false)).encode("abab"), (V{ab, ab}));
  // Consecutive matches: only the last one joins the next piece (as HF does).
  EXPECT_EQ(load(split("a", "MergedWithNext", false)).encode("aab"), (V{a, ab}));
  EXPECT_EQ(load(split("b", "MergedWithNext", false)).encode("abab"), (V{a, b, a, b}));
  // Regex patterns use PCRE2 with Unicode classes and lookahead.
  json re = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}(?=b)"}}}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_EQ(load(re).encode("abab"), (V{a, b, a, b}));
  // ByteLevel add_prefix_space: "a" is encoded as " a".
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  EXPECT_EQ(load(bl).encode("a"), (V{257}));
  EXPECT_EQ(load(bl).encode(" a"), (V{257}));
  bl["add_prefix_space"] = false;
  EXPECT_EQ(load(bl).encode("a"), (V{a}));
}

TEST(Tokenizer, AddedTokenStripAndSingleWord) {
  test::TempDir dir;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_encode(std::string(1, char(b)))] = b;
  json j;
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}};
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["added_tokens"] = json::array({
      {{"id", 300}, {"content", "<L>"}, {"lstrip", true}, {"rstrip", false}, {"single_word", false}, {"special", true}},
      {{"id", 301}, {"content", "<R>"}, {"lstrip", false}, {"rstrip", true}, {"single_word", false}, {"special", false}},
      {{"id", 302}, {"content", "cat"}, {"lstrip", false}, {"rstrip", false}, {"single_word", true}, {"special", false}},
  });
  test::write_text(dir / "tokenizer.json", j.dump());
  Tokenizer t = Tokenizer::load(dir.path.string());
  EXPECT_EQ(t.vocab_size(), 303);
  EXPECT_EQ(t.encode("x  <L>y"), (std::vector<int32_t>{'x', 300, 'y'}));
  EXPECT_EQ(t.encode("x<R> \ty"), (std::vector<int32_t>{'x', 301, 'y'}));
  EXPECT_EQ(t.encode("cat"), (std::vector<int32_t>{302}));
  EXPECT_EQ(t.encode("a cat."), (std::vector<int32_t>{'a', ' ', 302, '.'}));
  EXPECT_EQ(t.encode("cats"), (std::vector<int32_t>{'c', 'a', 't', 's'}));
  EXPECT_EQ(t.bos_id(), -1);
  EXPECT_THROW(t.encode("x", true), Error);
}

std::vector<std::string> small_corpus() {
  std::mt19937 rng(5);
  std::vector<std::string> texts;
  for (int d = 0; d < 4; ++d) {
    std::string s;
    for (int i = 0; i < 400; ++i) s += random_text(rng, 8) + " the model and the expert layer, 1234 ";
    texts.push_back(s);
  }
  return texts;
}

TEST(BpeTrainer, WritesWhatTheLoaderReadsAndRoundTrips) {
  auto texts = small_corpus();
  TrainedTokenizer tt = train_bpe(texts, {.vocab_size = 600, .min_frequency = 2});
  EXPECT_EQ(tt.vocab_size, 600);
  EXPECT_EQ(tt.n_merges, 600 - 266);  // no duplicate merge results on this corpus
  test::TempDir dir;
  write_tokenizer_dir(dir / "tok", tt);
  Tokenizer t = Tokenizer::load(dir / "tok");
  EXPECT_EQ(t.vocab_size(), 600);
  const auto& specials = seek_special_tokens();
  ASSERT_EQ(specials.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(t.token_id(specials[i]), i);
    EXPECT_EQ(t.is_special(i), i < kSkippedSpecials);  // bos, eos, pad; tags stay in decoded text
  }
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.piece(10 + ' '), "Ġ");  // bytes follow the specials in byte order
  // HF format details another loader relies on.
  json j = json::parse(tt.tokenizer_json);
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_TRUE(j["model"]["merges"][0].is_string());
  EXPECT_EQ(j["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(j["pre_tokenizer"]["use_regex"], true);
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(j["added_tokens"].size(), 10u);
  // Round trips, compression, special tokens in text.
  std::mt19937 rng(77);
  for (int iter = 0; iter < 300; ++iter) {
    std::string s = random_text(rng, 1 + iter % 30);
    ASSERT_EQ(t.decode(t.encode(s)), s);
  }
  std::string sample = texts[0].substr(0, 2000);
  EXPECT_LT(t.encode(sample).size(), sample.size() / 2);
  auto ids = t.encode("<|user|>hi<think>ok</think>");
  EXPECT_EQ(ids.front(), 4);
  EXPECT_EQ(t.decode(ids), "<|user|>hi<think>ok</think>");
  EXPECT_EQ(t.decode(ids, true), "<|user|>hi<think>ok</think>");  // role and reasoning tags are kept
  EXPECT_EQ(t.decode(t.encode("<|bos|>hi<|eos|>"), true), "hi");
  // Deterministic.
  TrainedTokenizer again = train_bpe(texts, {.vocab_size = 600, .min_frequency = 2});
  EXPECT_EQ(again.tokenizer_json, tt.tokenizer_json);
  EXPECT_EQ(again.tokenizer_config_json, tt.tokenizer_config_json);
}

TEST(BpeTrainer, SplitDigitsKeepsEveryDigitAToken) {
  // Numbers so frequent that plain BPE merges them.
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i)
    texts.push_back("What is " + std::to_string(1000 + i % 37) + " + 25? 2025 and x2y " + std::to_string(i * 7) +
                    "\u0663\u0664 ");
  TrainedTokenizer plain = train_bpe(texts, {.vocab_size = 400, .min_frequency = 2});
  TrainedTokenizer split = train_bpe(texts, {.vocab_size = 400, .min_frequency = 2, .split_digits = true});
  json j = json::parse(split.tokenizer_json);
  ASSERT_EQ(j["pre_tokenizer"]["type"], "Sequence");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["behavior"], "Isolated");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][1]["type"], "ByteLevel");
  test::TempDir dir;
  write_tokenizer_dir(dir / "plain", plain);
  write_tokenizer_dir(dir / "split", split);
  Tokenizer tp = Tokenizer::load(dir / "plain"), ts = Tokenizer::load(dir / "split");
  auto digit_tokens = [](const Tokenizer& t, const std::string& s) {
    int multi = 0;
    for (int32_t id : t.encode(s)) {
      const std::string piece = t.decode({id});
      bool has_digit = false;
      for (char c : piece) has_digit |= c >= '0' && c <= '9';
      multi += has_digit && piece.size() > 1;
    }
    return multi;
  };
  const std::string sample = "What is 1003 + 25? 2025 and x2y 700\u0663\u0664 ";
  EXPECT_GT(digit_tokens(tp, sample), 0);  // the plain tokenizer merged digits
  EXPECT_EQ(digit_tokens(ts, sample), 0);  // the split one never does
  std::vector<int32_t> ids = ts.encode("1003");
  EXPECT_EQ(ids.size(), 4u);
  // Non-ASCII digits (\p{N}) are isolated too: no merge holds U+0663 with U+0664.
  for (const auto& m : j["model"]["merges"]) EXPECT_EQ(m.get<std::string>().find("Ù£ Ù¤"), std::string::npos);
  std::mt19937 rng(5);
  for (int iter = 0; iter < 200; ++iter) {
    std::string s = random_text(rng, 1 + iter % 30);
    ASSERT_EQ(ts.decode(ts.encode(s)), s);
  }
  EXPECT_EQ(ts.decode(ts.encode(sample)), sample);
}

TEST(BpeTrainer, TiesBrokenByBytesAndSmallCorporaStopEarly) {
  // "ab" and "cd" occur equally often: "a b" is merged first.
  TrainedTokenizer tt = train_bpe({"cd\nab\ncd\nab"}, {.vocab_size = 1000, .min_frequency = 2});
  json j = json::parse(tt.tokenizer_json);
  ASSERT_GE(j["model"]["merges"].size(), 2u);
  EXPECT_EQ(j["model"]["merges"][0], "a b");
  EXPECT_LT(tt.vocab_size, 1000);  // ran out of pairs occurring twice
  EXPECT_THROW(train_bpe({"x"}, {.vocab_size = 100}), Error);
}

// The CLI as a user runs it: `seek tokenizer train`, then `seek tokenize` on a file piped to stdin.
std::string run_command(const std::string& cmd, int* status) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

TEST(Tokenizer, CliTokenizeAndTrain) {
  test::TempDir dir;
  const std::string seek = SEEK_BINARY;
  const std::string text = "  Hello, 世界 🚀\n\n<|user|>x\t ";
  test::write_text(dir / "text.txt", text);
  auto texts = small_corpus();
  test::write_text(dir / "a.txt", texts[0]);
  test::write_text(dir / "b.txt", texts[1]);
  int status = 0;
  run_command(seek + " tokenizer train --vocab-size 400 --out " + dir / "tok" + " " + dir / "a.txt" + " " + dir / "b.txt", &status);
  ASSERT_EQ(status, 0);
  Tokenizer t = Tokenizer::load(dir / "tok");
  EXPECT_EQ(t.vocab_size(), 400);
  std::string out = run_command(seek + " tokenize --tokenizer " + dir / "tok" + " - < " + dir / "text.txt", &status);
  ASSERT_EQ(status, 0);
  EXPECT_EQ(json::parse(out).get<std::vector<int32_t>>(), t.encode(text));  // stdin read exactly, no stripping
  out = run_command(seek + " tokenize --pieces --tokenizer " + dir / "tok" + " '<|bos|>hi'", &status);
  json pieces = json::parse(out);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0]["id"], 0);
  EXPECT_EQ(pieces[0]["piece"], "<|bos|>");
  EXPECT_EQ(pieces[0]["special"], true);
  EXPECT_EQ(pieces[1]["special"], false);
  // Bad input: exit status 2 with a message.
  run_command(seek + " tokenize --tokenizer " + dir / "missing" + " x 2>/dev/null", &status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  run_command(seek + " tokenizer train --vocab-size 10 --out " + dir / "t2" + " " + dir / "a.txt" + " 2>/dev/null", &status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace seek
