// Synthetic corpus (data/corpus.h): deterministic, held-out questions never in train, style and error
// shares as asked (within sampling error), worked documents right unless sloppy, every document the
// SeekTiny generation prompt + completion + EOS, and the JSON-lines file round-trips.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "data/corpus.h"
#include "model/chat_template.h"
#include "util/error.h"

using namespace seek;

namespace {

CorpusOptions opts(int64_t n, uint64_t seed = 1) {
  CorpusOptions o;
  o.seed = seed;
  o.n_documents = n;
  o.min_difficulty = 1;
  o.max_difficulty = kMaxDifficulty;
  return o;
}

bool starts_with(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

TEST(Corpus, Deterministic) {
  EXPECT_EQ(make_corpus(opts(500, 3)), make_corpus(opts(500, 3)));
  EXPECT_NE(make_corpus(opts(500, 3)), make_corpus(opts(500, 4)));
  // A prefix of a longer corpus is the shorter corpus.
  std::vector<std::string> a = make_corpus(opts(100, 3)), b = make_corpus(opts(300, 3));
  EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin()));
}

TEST(Corpus, HeldOutNeverInTrain) {
  CorpusOptions tr = opts(4000, 5), ho = opts(4000, 6);
  ho.split = Split::HeldOut;
  std::set<std::string> train;
  for (const CorpusDoc& d : make_corpus_docs(tr)) {
    ASSERT_EQ(split_of(d.problem), Split::Train);
    train.insert(d.problem.question);
  }
  for (const CorpusDoc& d : make_corpus_docs(ho)) {
    ASSERT_EQ(split_of(d.problem), Split::HeldOut);
    ASSERT_EQ(train.count(d.problem.question), 0u) << d.problem.question;
  }
}

TEST(Corpus, SharesAsRequested) {
  const int n = 5000;
  std::vector<CorpusDoc> docs = make_corpus_docs(opts(n, 7));
  int worked = 0, sloppy = 0, cd = 0;
  std::vector<int> by_d(kMaxDifficulty + 1), direct_d(kMaxDifficulty + 1), direct_wrong_d(kMaxDifficulty + 1);
  for (const CorpusDoc& d : docs) {
    worked += d.worked;
    sloppy += d.sloppy;
    cd += d.problem.kind == TaskKind::Countdown;
    by_d[d.problem.difficulty]++;
    if (!d.worked) {
      direct_d[d.problem.difficulty]++;
      direct_wrong_d[d.problem.difficulty] += !d.correct;
    }
  }
  // 4 standard deviations of a binomial share.
  auto tol = [](double p, double m) { return 4 * std::sqrt(p * (1 - p) / m); };
  EXPECT_NEAR(worked / double(n), 0.2, tol(0.2, n));
  EXPECT_NEAR(sloppy / double(worked), 0.1, tol(0.1, worked));
  EXPECT_NEAR(cd / double(n), 0.5, tol(0.5, n));
  for (int d = 1; d <= kMaxDifficulty; ++d) {
    EXPECT_NEAR(by_d[d] / double(n), 1.0 / kMaxDifficulty, tol(1.0 / kMaxDifficulty, n));
    double rate = default_direct_error_rate(d);
    EXPECT_NEAR(direct_wrong_d[d] / double(direct_d[d]), rate, tol(rate, direct_d[d]) + 1e-9) << "difficulty " << d;
  }
}

TEST(Corpus, DocumentsAreWellFormedAndCheckOut) {
  std::vector<CorpusDoc> docs = make_corpus_docs(opts(3000, 8));
  const std::string eos(chat_tokens(ChatStyle::SeekTiny).eos);
  for (const CorpusDoc& d : docs) {
    const std::string prompt = prompt_text(d.problem);
    ASSERT_TRUE(starts_with(prompt, "<|bos|><|user|>"));
    ASSERT_TRUE(ends_with(prompt, "<|assistant|>"));
    ASSERT_TRUE(starts_with(d.text, prompt)) << d.text;
    ASSERT_TRUE(ends_with(d.text, eos)) << d.text;
    std::string completion = d.text.substr(prompt.size(), d.text.size() - prompt.size() - eos.size());
    auto ans = answer_span(completion);
    ASSERT_TRUE(ans.has_value()) << d.text;
    EXPECT_EQ(*ans, d.answer);
    EXPECT_EQ(check_answer(d.problem, *ans), d.correct);
    if (d.worked) {
      ASSERT_TRUE(starts_with(completion, "<think>")) << d.text;
      ASSERT_NE(completion.find("</think><answer>"), std::string::npos);
      EXPECT_EQ(d.correct, !d.sloppy) << d.text;  // worked: right unless sloppy, wrong when sloppy
    } else {
      EXPECT_EQ(completion, "<answer>" + d.answer + "</answer>");
      if (d.problem.difficulty == 1) {
        EXPECT_TRUE(d.correct) << d.text;
      }
    }
    EXPECT_EQ(d.text.find("<|eos|>"), d.text.size() - eos.size());  // exactly one EOS, at the end
  }
}

TEST(Corpus, OptionsControlStylesAndErrors) {
  CorpusOptions o = opts(400, 9);
  o.worked_fraction = 0.0;
  o.direct_error_rate = std::vector<double>(kMaxDifficulty, 1.0);
  for (const CorpusDoc& d : make_corpus_docs(o)) EXPECT_FALSE(d.correct || d.worked);
  o.direct_error_rate = std::vector<double>(kMaxDifficulty, 0.0);
  for (const CorpusDoc& d : make_corpus_docs(o)) EXPECT_TRUE(d.correct);
  o.worked_fraction = 1.0;
  o.sloppy_fraction = 0.0;
  o.countdown_fraction = 1.0;
  o.min_difficulty = o.max_difficulty = 4;
  for (const CorpusDoc& d : make_corpus_docs(o)) {
    EXPECT_TRUE(d.worked && d.correct);
    EXPECT_EQ(d.problem.kind, TaskKind::Countdown);
    EXPECT_EQ(d.problem.difficulty, 4);
  }
  o.sloppy_fraction = 1.0;
  o.countdown_fraction = 0.0;
  for (const CorpusDoc& d : make_corpus_docs(o)) EXPECT_TRUE(d.sloppy && !d.correct);
}

TEST(Corpus, BadOptionsNameTheField) {
  auto msg = [](CorpusOptions o) {
    try {
      validate(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CorpusOptions o = opts(10);
  EXPECT_EQ(msg(o), "");
  o.worked_fraction = 1.5;
  EXPECT_NE(msg(o).find("worked_fraction"), std::string::npos);
  o = opts(10);
  o.n_documents = -1;
  EXPECT_NE(msg(o).find("n_documents"), std::string::npos);
  o = opts(10);
  o.min_difficulty = 5;
  o.max_difficulty = 3;
  EXPECT_NE(msg(o).find("max_difficulty"), std::string::npos);
  o = opts(10);
  o.direct_error_rate = {0.1};
  EXPECT_NE(msg(o).find("direct_error_rate"), std::string::npos);
  o = opts(10);
  o.sloppy_fraction = std::nan("");
  EXPECT_NE(msg(o).find("sloppy_fraction"), std::string::npos);
}

TEST(Corpus, WritesJsonLines) {
  std::string path = testing::TempDir() + "/seek_corpus_test.jsonl";
  CorpusOptions o = opts(200, 10);
  write_corpus(path, o);
  std::vector<CorpusDoc> docs = make_corpus_docs(o);
  std::ifstream f(path);
  std::string line;
  size_t i = 0;
  while (std::getline(f, line)) {
    ASSERT_LT(i, docs.size());
    nlohmann::json j = nlohmann::json::parse(line);
    // `seek data` adds the BOS and EOS itself.
    EXPECT_EQ("<|bos|>" + j.at("text").get<std::string>() + "<|eos|>", docs[i].text);
    EXPECT_TRUE(starts_with(j.at("text").get<std::string>(), "<|user|>"));
    EXPECT_EQ(j.at("style").get<std::string>(), docs[i].worked ? "worked" : "direct");
    EXPECT_EQ(j.at("correct").get<bool>(), docs[i].correct);
    EXPECT_EQ(j.at("split").get<std::string>(), "train");
    ++i;
  }
  EXPECT_EQ(i, docs.size());
}
