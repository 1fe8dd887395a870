// Generation: several sequences in one batch give exactly what each gives alone (greedy and seeded
// sampling, different prompt lengths, budgets and stops); stop strings that span tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "engine/generator.h"
#include "model/bpe_trainer.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;

TEST(StopMatcher, HoldsBackAPossibleStartAndCutsAtTheFirstStop) {
  StopMatcher m({"</answer>", "STOP"});
  EXPECT_EQ(m.push("the answer is 4"), "the answer is 4");
  EXPECT_EQ(m.push(" </ans"), " ");  // "</ans" may begin "</answer>"
  EXPECT_EQ(m.push("wer> more"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("x"), "");

  StopMatcher n({"STOP"});
  EXPECT_EQ(n.push("ST"), "");
  EXPECT_EQ(n.push("AY"), "STAY");  // not a stop after all: released
  EXPECT_EQ(n.push("S"), "");
  EXPECT_EQ(n.finish(), "S");
  EXPECT_FALSE(n.stopped());

  StopMatcher e({"b", "abc"});
  EXPECT_EQ(e.push("xab"), "xa");  // "b" completes first: the earliest stop wins
  EXPECT_TRUE(e.stopped());
  StopMatcher none({});
  EXPECT_EQ(none.push("anything"), "anything");
}

namespace {

std::vector<int32_t> prompt(int64_t n, int32_t salt, int64_t V) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(int32_t((i * 31 + salt * 7 + 3) % V));
  return p;
}

}  // namespace

TEST(Generator, BatchEqualsOneAtATime) {
  for (const char* type : {"deepseek_v3", "qwen2"}) {
    test::TempDir dir;
    write_random_checkpoint(dir.path.string(), test::tiny_config(type), {DType::F32, 31, 1});
    auto m = Model::load(dir.path.string());
    const int64_t V = m->config().vocab_size;
    std::vector<GenerationRequest> reqs(4);
    reqs[0].prompt = prompt(3, 1, V);
    reqs[0].sampling.temperature = 0;
    reqs[0].stop.max_new_tokens = 6;
    reqs[1].prompt = prompt(7, 2, V);
    reqs[1].sampling.temperature = 0.8f;
    reqs[1].sampling.top_p = 0.9f;
    reqs[1].sampling.seed = 5;
    reqs[1].stop.max_new_tokens = 9;
    reqs[2].prompt = prompt(5, 3, V);
    reqs[2].sampling.temperature = 1.0f;
    reqs[2].sampling.top_k = 20;
    reqs[2].sampling.seed = 6;
    reqs[2].stop.max_new_tokens = 12;
    reqs[3] = reqs[1];  // the same prompt: prefilled once, its cache copied (must still equal alone)
    reqs[3].sampling.seed = 77;
    Generator g(*m, nullptr);
    // Alone first, to find a token sequence 2 will emit and use it as a stop id in the batch.
    std::vector<GenerationOutput> alone;
    for (const auto& r : reqs) alone.push_back(g.run({r})[0]);
    ASSERT_GE(alone[2].tokens.size(), 4u);
    reqs[2].stop.stop_ids = {alone[2].tokens[3]};
    alone[2] = g.run({reqs[2]})[0];
    EXPECT_EQ(alone[2].finish_reason, "stop");
    std::vector<GenerationOutput> batch = g.run(reqs);
    ASSERT_EQ(batch.size(), reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(batch[i].tokens, alone[i].tokens) << type << " request " << i;
      EXPECT_EQ(batch[i].finish_reason, alone[i].finish_reason) << type << " request " << i;
      EXPECT_EQ(batch[i].prompt_tokens, int64_t(reqs[i].prompt.size()));
    }
    EXPECT_EQ(batch[0].finish_reason, "length");
    EXPECT_EQ(batch[0].tokens.size(), 6u);
    EXPECT_NE(batch[1].tokens, batch[3].tokens) << "different seeds should differ";
  }
}

TEST(Generator, RefusesBadRequests) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config("llama"), {DType::F32, 1, 1});
  auto m = Model::load(dir.path.string());
  Generator g(*m, nullptr);
  GenerationRequest r;
  EXPECT_THROW(g.run({r}), Error);  // empty prompt
  r.prompt = {1, 2};
  r.stop.stop_strings = {"x"};
  EXPECT_THROW(g.run({r}), Error);  // stop strings without a tokenizer
  r.stop.stop_strings.clear();
  r.stop.max_new_tokens = 100000;
  EXPECT_THROW(g.run({r}), Error);  // beyond max_position_embeddings
  r.stop.max_new_tokens = 3;
  r.sampling.top_p = 2;
  EXPECT_THROW(g.run({r}), Error);
}

TEST(Generator, StopStringAcrossTokensWithATokenizer) {
  // A tokenizer trained here and a tiny model of the same vocabulary: run greedy once, pick two ASCII
  // bytes on either side of a token boundary as the stop string, and run again with it.
  test::TempDir dir;
  std::vector<std::string> corpus(20, "the quick brown fox jumps over the lazy dog; 12 + 34 = 46\n");
  TrainedTokenizer tt = train_bpe(corpus, BpeTrainOptions{300, 2});
  write_tokenizer_dir(dir.path.string(), tt);
  Tokenizer tok = Tokenizer::load(dir.path.string());
  auto cfg = test::tiny_config("deepseek_v3");
  cfg["vocab_size"] = tok.vocab_size();
  bool tested = false;
  for (uint64_t seed = 41; seed < 61 && !tested; ++seed) {
    write_random_checkpoint(dir.path.string(), cfg, {DType::F32, seed, 1});
    auto m = Model::load(dir.path.string());
    Generator g(*m, &tok);
    GenerationRequest r;
    r.prompt = tok.encode("the quick brown");
    r.sampling.temperature = 0;
    r.stop.max_new_tokens = 40;
    // Keep the output ASCII (so bytes and text agree): bias away every token holding a byte >= 0x80.
    for (int32_t id = 0; id < int32_t(tok.vocab_size()); ++id) {
      std::string_view b = tok.bytes(id);
      if (std::any_of(b.begin(), b.end(), [](char ch) { return (unsigned char)ch >= 0x80; }))
        r.sampling.logit_bias.push_back({id, -100.f});
    }
    GenerationOutput free_run = g.run({r})[0];
    std::string before;  // text of tokens [0, j)
    for (size_t j = 1; j < free_run.tokens.size() && !tested; ++j) {
      before += std::string(tok.bytes(free_run.tokens[j - 1]));
      std::string next(tok.bytes(free_run.tokens[j]));
      if (before.empty() || next.empty() || (unsigned char)before.back() >= 0x80 || (unsigned char)next[0] >= 0x80) continue;
      const std::string stop = std::string(1, before.back()) + next[0];
      if (before.find(stop) != std::string::npos) continue;  // it must first complete across the boundary
      r.stop.stop_strings = {stop};
      std::string streamed;
      GenerationOutput cut = g.run({r}, [&](size_t, std::string_view s) {
        streamed += s;
        return true;
      })[0];
      EXPECT_EQ(cut.finish_reason, "stop") << "stop " << stop;
      EXPECT_EQ(cut.text, before.substr(0, before.size() - 1)) << "stop " << stop;
      EXPECT_EQ(streamed, cut.text) << "streamed text must equal the final text (no part of the stop leaks)";
      tested = true;
    }
  }
  EXPECT_TRUE(tested) << "no model seed produced an ASCII token boundary to stop at";
}

// Speculative verification in the decoding step: drafts change how many tokens a step yields, never
// which — perfect drafts (the output itself), wrong drafts and half-right ones all give the output of
// decoding one token at a time, greedy and sampled, and the cache keeps only the accepted tokens.
TEST(Decoder, DraftsChangeHowManyTokensAStepYieldsNeverWhich) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config("deepseek_v3"), {DType::F32, 13, 1});
  auto m = Model::load(dir.path.string());
  const int64_t V = m->config().vocab_size;
  for (float temperature : {0.f, 0.9f}) {
    GenerationRequest r;
    r.prompt = prompt(9, 4, V);
    r.sampling.temperature = temperature;
    r.sampling.seed = 11;
    r.stop.max_new_tokens = 20;
    const std::vector<int32_t> want = Generator(*m, nullptr).run({r})[0].tokens;
    ASSERT_EQ(want.size(), 20u);
    // draft(i): the tokens proposed to follow the first i output tokens (want[i], ... when right).
    auto run = [&](const std::function<std::vector<int32_t>(size_t)>& draft, int64_t* steps) {
      Sequence s(*m, nullptr, r, MlaForm::Absorbed);
      Decoder d(*m, nullptr);
      std::vector<std::vector<TokenEvent>> events;
      Sequence* one[] = {&s};
      *steps = 0;
      while (!s.done()) {
        if (!s.prefilling()) s.draft = draft(s.generated.size());
        d.step(one, -1, events);
        ++*steps;
        // Every position in the cache holds a token that was accepted: the prompt and the output but
        // the last (fed at the next step).
        if (!s.done()) {
          EXPECT_EQ(s.cache.len, int64_t(r.prompt.size() + s.generated.size()) - 1);
        }
      }
      return s.generated;
    };
    int64_t plain = 0, perfect = 0, wrong = 0, half = 0;
    EXPECT_EQ(run([](size_t) { return std::vector<int32_t>{}; }, &plain), want);
    EXPECT_EQ(run([&](size_t i) {
                return std::vector<int32_t>(want.begin() + long(std::min(want.size(), i)),
                                            want.begin() + long(std::min(want.size(), i + 4)));
              }, &perfect), want);
    EXPECT_EQ(run([&](size_t i) { return std::vector<int32_t>{int32_t((want[std::min(i, want.size() - 1)] + 1) % V)}; },
                  &wrong), want);
    EXPECT_EQ(run([&](size_t i) {
                std::vector<int32_t> d(want.begin() + long(std::min(want.size(), i)),
                                       want.begin() + long(std::min(want.size(), i + 2)));
                if (d.size() == 2) d[1] = (d[1] + 5) % int32_t(V);
                return d;
              }, &half), want);
    EXPECT_EQ(plain, 20);  // the prefill step's token, then one token per step
    EXPECT_EQ(wrong, plain);
    EXPECT_LE(perfect, 1 + 4);  // up to 5 tokens a step (4 drafts and the one after) after the prefill's
    EXPECT_LT(half, plain);
  }
}
