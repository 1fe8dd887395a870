// test_tokenizer_students.cpp — the R1-Distill students' tokenizers: Qwen2.5 (NFC normalizer, one digit
// per token) and Llama 3 (ignore_merges, digits in threes) against golden ids of an independent
// JavaScript implementation (tests/data/tokenizer-qwen2/, tests/data/tokenizer-llama3/), every
// normalizer on a small synthetic vocabulary, the `normalized` flag of added tokens, and
// Tokenizer::from_parts (GGUF) against Tokenizer::load on the same tokenizers.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "model/tokenizer.h"
#include "test_util.h"
#include "util/error.h"

using json = nlohmann::json;

namespace seek {
namespace {

const Tokenizer& qwen() {
  static const Tokenizer t = Tokenizer::load(test::data_path("data/tokenizer-qwen2"));
  return t;
}
const Tokenizer& llama3() {
  static const Tokenizer t = Tokenizer::load(test::data_path("data/tokenizer-llama3"));
  return t;
}

json read_json(const std::string& rel) {
  std::ifstream in(test::data_path(rel));
  return json::parse(in);
}

// Every golden case and random text; decode gives the text back where there is no normalizer.
void check_golden(const Tokenizer& t, const std::string& rel, bool round_trip) {
  json g = read_json(rel);
  int cases = 0, bad = 0;
  for (auto& [name, c] : g["cases"].items()) {
    const std::string text = c["text"];
    auto ids = t.encode(text);
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>()) << name << ": " << json(text).dump();
    if (round_trip) {
      EXPECT_EQ(t.decode(ids), text) << name;
    }
    ++cases;
  }
  for (auto& c : g["random"]) {
    const std::string text = c["text"];
    auto ids = t.encode(text);
    if (ids != c["ids"].get<std::vector<int32_t>>() && bad++ < 5) ADD_FAILURE() << "ids differ for " << json(text).dump();
    if (round_trip) {
      EXPECT_EQ(t.decode(ids), text);
    }
  }
  EXPECT_EQ(bad, 0);
  EXPECT_GE(cases, 30);
  EXPECT_EQ(g["random"].size(), 400u);
}

TEST(TokenizerQwen25, GoldenIds) { check_golden(qwen(), "data/tokenizer-qwen2/golden.json", false); }
TEST(TokenizerLlama3, GoldenIds) { check_golden(llama3(), "data/tokenizer-llama3/golden.json", true); }

TEST(TokenizerQwen25, NfcDigitsAndMetadata) {
  const Tokenizer& t = qwen();
  // Decomposed and precomposed accents are the same tokens after NFC; decode gives the NFC text.
  EXPECT_EQ(t.encode("cafe\u0301 A\u030angstro\u0308m"), t.encode("café Ångström"));
  EXPECT_EQ(t.decode(t.encode("cafe\u0301")), "café");
  EXPECT_EQ(t.encode("\u2126"), t.encode("\u03a9"));  // OHM SIGN is a singleton: NFC maps it to omega
  EXPECT_NE(t.encode("ｆｉ"), t.encode("fi"));         // NFC is not NFKC: fullwidth stays
  // One digit per token.
  EXPECT_EQ(t.encode("12345").size(), 5u);
  // Special tokens, written in text, are single ids; no BOS; eos is the chat end of turn.
  EXPECT_EQ(t.encode("<|im_start|>user\nhi<|im_end|>").front(), 151644);
  EXPECT_EQ(t.encode("<|im_start|>user\nhi<|im_end|>").back(), 151645);
  EXPECT_EQ(t.bos_id(), -1);
  EXPECT_EQ(t.eos_id(), 151645);
  EXPECT_EQ(t.token_id("<|endoftext|>"), 151643);
  EXPECT_TRUE(t.is_special(151645));
  EXPECT_FALSE(t.is_special(151657));  // <tool_call>: added, not special
  EXPECT_EQ(t.vocab_size(), 151665);
  EXPECT_NE(t.chat_template().find("<|im_start|>"), std::string::npos);
  // Invalid bytes pass through NFC unchanged; the valid runs around them are normalized on their own.
  const std::string bad = "e\xff\xcc\x81x\xc3";
  EXPECT_EQ(t.decode(t.encode(bad)), bad);
  EXPECT_EQ(t.decode(t.encode("e\xcc\x81\xff")), "\xc3\xa9\xff");
}

TEST(TokenizerLlama3, DigitsIgnoreMergesAndMetadata) {
  const Tokenizer& t = llama3();
  auto ids = t.encode("1234567");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(t.decode({ids[0]}), "123");
  EXPECT_EQ(t.decode({ids[2]}), "7");
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_EQ(t.eos_id(), 128009);  // <|eot_id|> (Llama 3.1's tokenizer_config.json)
  EXPECT_EQ(t.encode("hi", true).front(), 128000);
  EXPECT_EQ(t.vocab_size(), 128256);
  // ignore_merges: a pre-token that is a vocabulary entry is that one token, even where the merges
  // alone would not build it: the same parts with and without it.
  TokenizerParts p;
  json j = read_json("data/tokenizer-llama3/tokenizer.json");
  p.tokens.assign(size_t(t.vocab_size()), "");
  for (auto& [piece, id] : j["model"]["vocab"].items()) p.tokens[id.get<size_t>()] = piece;
  for (auto& a : j["added_tokens"]) p.tokens[a["id"].get<size_t>()] = a["content"];
  p.token_types.assign(p.tokens.size(), 1);
  for (auto& a : j["added_tokens"]) p.token_types[a["id"].get<size_t>()] = 3;
  p.merges = j["model"]["merges"].get<std::vector<std::string>>();
  p.pre = "gpt-2";  // a pre-token per word, and no implied ignore_merges
  Tokenizer with = Tokenizer::from_parts([&] { auto q = p; q.ignore_merges = true; return q; }(), "llama3 parts");
  Tokenizer without = Tokenizer::from_parts(p, "llama3 parts");
  // " jeho" (id 101503) is in the vocabulary, but the merges alone make "Ġj", "eh", "o" of it (the
  // golden case "ignore_merges" has the JavaScript implementation's ids for it and four more).
  EXPECT_EQ(t.encode(" jeho"), (std::vector<int32_t>{101503}));
  EXPECT_EQ(with.encode(" jeho"), (std::vector<int32_t>{101503}));
  EXPECT_EQ(without.encode(" jeho").size(), 3u);
}

// ---------------------------------------------------------------------------------------------
// Normalizers on a small vocabulary: the 256 bytes (so any text encodes and decode shows what the
// normalizer made of it).

json byte_vocab() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_encode(std::string(1, char(b)))] = b;
  return vocab;
}

Tokenizer with_normalizer(const test::TempDir& dir, const json& normalizer, const json& added = json::array()) {
  json j;
  j["model"] = {{"type", "BPE"}, {"vocab", byte_vocab()}, {"merges", json::array()}};
  j["normalizer"] = normalizer;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["added_tokens"] = added;
  test::write_text(dir / "tokenizer.json", j.dump());
  return Tokenizer::load(dir.path.string());
}

std::string normalized(const test::TempDir& dir, const json& normalizer, const std::string& text) {
  Tokenizer t = with_normalizer(dir, normalizer);
  return t.decode(t.encode(text));
}

TEST(TokenizerNormalizers, UnicodeForms) {
  test::TempDir dir;
  const std::string decomposed = "e\u0301 \u212b \ufb01 \uff21 x\u00b2 \u1100\u1161";
  EXPECT_EQ(normalized(dir, {{"type", "NFC"}}, decomposed), "\u00e9 \u00c5 \ufb01 \uff21 x\u00b2 \uac00");
  EXPECT_EQ(normalized(dir, {{"type", "NFD"}}, "\u00e9 \u212b \uac00"), "e\u0301 A\u030a \u1100\u1161");
  EXPECT_EQ(normalized(dir, {{"type", "NFKC"}}, decomposed), "\u00e9 \u00c5 fi A x2 \uac00");
  EXPECT_EQ(normalized(dir, {{"type", "NFKD"}}, "\u00e9 \ufb01 \uff21"), "e\u0301 fi A");
  EXPECT_EQ(normalized(dir, {{"type", "Lowercase"}}, "HeLLo ÀÉ ΣΑΣ ДОМ"), "hello àé σασ дом");
  EXPECT_EQ(normalized(dir, {{"type", "StripAccents"}}, "e\u0301a\u0308"), "ea");
  // Invalid bytes pass through every Unicode normalizer untouched.
  EXPECT_EQ(normalized(dir, {{"type", "NFKC"}}, "\xff\uff21\x80"), "\xff" "A\x80");
  EXPECT_EQ(normalized(dir, {{"type", "Lowercase"}}, "A\xc3" "B"), "a\xc3" "b");
}

TEST(TokenizerNormalizers, StringSteps) {
  test::TempDir dir;
  EXPECT_EQ(normalized(dir, {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, " \t\u3000 a b \n\u00a0"), "a b");
  EXPECT_EQ(normalized(dir, {{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, "  a  "), "  a");
  EXPECT_EQ(normalized(dir, {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}, "a b  c"),
            "a\u2581b\u2581\u2581c");
  EXPECT_EQ(normalized(dir, {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}}, "a \t\n b\u3000c"),
            "a b c");
  EXPECT_EQ(normalized(dir, {{"type", "Replace"}, {"pattern", {{"Regex", "\\p{N}"}}}, {"content", "#"}}, "a1b22"), "a#b##");
  EXPECT_EQ(normalized(dir, {{"type", "Prepend"}, {"prepend", "\u2581"}}, "hi"), "\u2581hi");
  json seq = {{"type", "Sequence"},
              {"normalizers", json::array({{{"type", "NFKC"}}, {{"type", "Lowercase"}},
                                           {{"type", "Replace"}, {"pattern", {{"String", "fi"}}}, {"content", "F"}}})}};
  EXPECT_EQ(normalized(dir, seq, "\ufb01ne \uff26\uff29"), "Fne F");
  // Refused: named in the error.
  for (const char* type : {"BertNormalizer", "Precompiled", "Bogus"}) {
    try {
      with_normalizer(dir, {{"type", type}});
      ADD_FAILURE() << type;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(type), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(with_normalizer(dir, {{"type", "Replace"}, {"pattern", {{"Regex", "("}}}, {"content", ""}}), Error);
}

// HF's AddedVocabulary: normalized = false tokens match the raw text; normalized = true tokens match
// the normalized text by their normalized content.
TEST(TokenizerNormalizers, AddedTokensNormalizedFlag) {
  test::TempDir dir;
  json added = json::array({
      {{"id", 300}, {"content", "<RAW>"}, {"special", true}, {"normalized", false}},
      {{"id", 301}, {"content", "Hello"}, {"special", false}, {"normalized", true}},
      {{"id", 302}, {"content", "<Dflt>"}, {"special", false}},  // no flag: !special -> normalized
  });
  Tokenizer t = with_normalizer(dir, {{"type", "Lowercase"}}, added);
  using V = std::vector<int32_t>;
  EXPECT_EQ(t.encode("<RAW>"), (V{300}));
  EXPECT_EQ(t.encode("<raw>"), (V{'<', 'r', 'a', 'w', '>'}));  // not matched after lowercasing either
  EXPECT_EQ(t.encode("HELLO"), (V{301}));                      // "hello" in the normalized text
  EXPECT_EQ(t.encode("hello"), (V{301}));
  EXPECT_EQ(t.encode("x<RAW>HeLLo"), (V{'x', 300, 301}));
  EXPECT_EQ(t.encode("<DFLT>"), (V{302}));
  EXPECT_EQ(t.decode({301}), "Hello");  // an added token decodes to its content
}

// ---------------------------------------------------------------------------------------------
// from_parts: the tokenizer.json's tokens by id, merges and added tokens (special -> control, others ->
// user defined) give the same ids as Tokenizer::load.

TokenizerParts parts_of(const std::string& rel, const Tokenizer& loaded, const std::string& pre) {
  json j = read_json(rel + "/tokenizer.json");
  TokenizerParts p;
  p.tokens.assign(size_t(loaded.vocab_size()), "");
  p.token_types.assign(p.tokens.size(), 1);
  for (auto& [piece, id] : j["model"]["vocab"].items()) p.tokens[id.get<size_t>()] = piece;
  for (auto& a : j["added_tokens"]) {
    p.tokens[a["id"].get<size_t>()] = a["content"];
    p.token_types[a["id"].get<size_t>()] = a["special"].get<bool>() ? 3 : 4;
  }
  for (auto& m : j["model"]["merges"])
    p.merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  p.pre = pre;
  p.bos_id = loaded.bos_id();
  p.eos_id = loaded.eos_id();
  p.ignore_merges = j["model"].value("ignore_merges", false);
  return p;
}

void check_parts(const std::string& rel, const Tokenizer& loaded, const std::string& pre, const std::string& golden) {
  Tokenizer t = Tokenizer::from_parts(parts_of(rel, loaded, pre), rel + " (parts)");
  EXPECT_EQ(t.vocab_size(), loaded.vocab_size());
  EXPECT_EQ(t.bos_id(), loaded.bos_id());
  EXPECT_EQ(t.eos_id(), loaded.eos_id());
  json g = read_json(golden);
  int n = 0;
  for (auto& [name, c] : g["cases"].items()) {
    const std::string text = c["text"];
    EXPECT_EQ(t.encode(text), loaded.encode(text)) << name;
    ++n;
  }
  for (auto& c : g["random"]) {
    const std::string text = c["text"];
    EXPECT_EQ(t.encode(text), loaded.encode(text)) << json(text).dump();
    ++n;
  }
  EXPECT_GE(n, 30);
  for (int32_t id : {0, 1, 100, int32_t(loaded.vocab_size() - 1)}) {
    EXPECT_EQ(t.bytes(id), loaded.bytes(id));
    EXPECT_EQ(t.is_special(id), loaded.is_special(id));
  }
}

TEST(TokenizerFromParts, DeepSeekV3SameAsLoad) {
  const Tokenizer loaded = Tokenizer::load(test::data_path("data/tokenizer"));
  check_parts("data/tokenizer", loaded, "deepseek-v3", "data/tokenizer/golden_random.json");
  check_parts("data/tokenizer", loaded, "deepseek-v3", "data/tokenizer/golden.json");
}
TEST(TokenizerFromParts, Qwen25SameAsLoad) {
  check_parts("data/tokenizer-qwen2", qwen(), "qwen2", "data/tokenizer-qwen2/golden.json");
}
TEST(TokenizerFromParts, Llama3SameAsLoad) {
  check_parts("data/tokenizer-llama3", llama3(), "llama-bpe", "data/tokenizer-llama3/golden.json");
}

TEST(TokenizerFromParts, Errors) {
  TokenizerParts p;
  for (int b = 0; b < 256; ++b) p.tokens.push_back(byte_level_encode(std::string(1, char(b))));
  p.tokens.push_back("ab");
  p.merges = {"a b"};
  p.pre = "gpt-2";
  Tokenizer t = Tokenizer::from_parts(p, "x.gguf");
  EXPECT_EQ(t.encode("abab"), (std::vector<int32_t>{256, 256}));
  auto expect_error = [](const TokenizerParts& q, const std::string& needle) {
    try {
      Tokenizer::from_parts(q, "x.gguf");
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("x.gguf"), std::string::npos) << e.what();
    }
  };
  TokenizerParts q = p;
  q.pre = "smaug";
  expect_error(q, "\"smaug\" is not a known pre-tokenizer (default, gpt-2, smollm, llama-bpe");
  q = p;
  q.token_types = {1, 1};
  expect_error(q, "token_type has 2 entries for 257 tokens");
  q = p;
  q.merges = {"a zz"};
  expect_error(q, "tokenizer.ggml.merges[0]");
  q = p;
  q.tokens.erase(q.tokens.begin() + 'a');
  expect_error(q, "no token for byte");
  q = p;
  q.eos_id = 999;
  expect_error(q, "eos_token_id = 999");
  // Every known pre-tokenizer compiles and encodes.
  for (const char* pre : {"default", "gpt-2", "smollm", "llama-bpe", "llama3", "qwen2", "deepseek-r1-qwen", "deepseek-v3",
                          "deepseek-llm", "deepseek-coder"}) {
    q = p;
    q.pre = pre;
    Tokenizer k = Tokenizer::from_parts(q, "x.gguf");
    const std::string s = "Hello 世界 123456\n\n  ab!! é";
    EXPECT_EQ(k.decode(k.encode(s)), s) << pre;
  }
  // Control tokens are special added tokens, user-defined ones plain added tokens.
  q = p;
  q.tokens.push_back("<|ctl|>");
  q.tokens.push_back("<usr>");
  q.token_types.assign(q.tokens.size(), 1);
  q.token_types[257] = 3;
  q.token_types[258] = 4;
  Tokenizer k = Tokenizer::from_parts(q, "x.gguf");
  EXPECT_EQ(k.encode("x<|ctl|>ab<usr>"), (std::vector<int32_t>{'x', 257, 256, 258}));
  EXPECT_TRUE(k.is_special(257));
  EXPECT_FALSE(k.is_special(258));
}

// `seek tokenize` on Qwen2.5's tokenizer (it refused the NFC normalizer before).
TEST(TokenizerQwen25, CliTokenize) {
  FILE* p = popen((std::string(SEEK_BINARY) + " tokenize --tokenizer " + test::data_path("data/tokenizer-qwen2") +
                   " 'Hello, world!'").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(WEXITSTATUS(pclose(p)), 0);
  EXPECT_EQ(json::parse(out).get<std::vector<int32_t>>(), (std::vector<int32_t>{9707, 11, 1879, 0}));
}

}  // namespace
}  // namespace seek
