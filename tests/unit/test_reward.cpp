// Rewards (rl/reward.h): the exact format rule (tags once each, in order, only whitespace outside),
// with and without the opening <think> in the prompt; accuracy through check_answer; the weighted total;
// and a fuzz over random bytes, tag soups, NULs, invalid UTF-8, nested/duplicated tags and megabyte
// inputs — never an exception, never a crash (the unit tests also run under ASan/UBSan).
#include <gtest/gtest.h>

#include <string>

#include "rl/reward.h"
#include "util/rng.h"

using namespace seek;
using namespace seek::rl;

namespace {

Problem arith(int64_t a, char op, int64_t b, int64_t result) {
  Problem p;
  p.kind = TaskKind::Arithmetic;
  p.numbers = {a, b};
  p.op = op;
  p.target = result;
  p.answer = std::to_string(result);
  return p;
}

Problem countdown(std::vector<int64_t> numbers, int64_t target) {
  Problem p;
  p.kind = TaskKind::Countdown;
  p.numbers = std::move(numbers);
  p.target = target;
  return p;
}

bool formatted(std::string_view c, bool think_in_prompt = false) {
  return parse_completion(c, think_in_prompt).has_value();
}

}  // namespace

TEST(Reward, WellFormedCompletions) {
  EXPECT_TRUE(formatted("<think>12*3 = 36</think><answer>36</answer>"));
  EXPECT_TRUE(formatted("<think></think>\n<answer>36</answer>\n"));
  EXPECT_TRUE(formatted(" \n<think>a\nb</think> \t\r\n<answer> 36 </answer>  \n"));
  auto p = parse_completion("<think>why</think>\n<answer>42</answer>", false);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->reasoning, "why");
  EXPECT_EQ(p->answer, "42");
  // The opening tag lives in the prompt: the completion starts inside the reasoning.
  p = parse_completion("so 6*7 = 42\n</think>\n<answer>42</answer>", true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->reasoning, "so 6*7 = 42\n");
  EXPECT_TRUE(formatted("</think><answer>42</answer>", true));
  // Bytes are bytes inside the reasoning.
  const char raw[] = "<think>\0\xff\xfe</think><answer>1</answer>";
  EXPECT_TRUE(formatted(std::string(raw, sizeof raw - 1)));
}

TEST(Reward, MalformedCompletions) {
  const char* bad[] = {
      "",
      "42",
      "<answer>42</answer>",                                  // no reasoning
      "<think>x</think>",                                     // no answer
      "<think>x</think><answer></answer>",                    // empty answer
      "<think>x</think><answer> \n</answer>",                 // blank answer
      "<think>x</think>so<answer>42</answer>",                // text between
      "<think>x</think><answer>42</answer>.",                 // text after
      "Sure! <think>x</think><answer>42</answer>",            // text before
      "<answer>42</answer><think>x</think>",                  // wrong order
      "<think>x<answer>42</answer></think>",                  // nested
      "<think><think>x</think><answer>42</answer>",           // duplicated <think>
      "<think>x</think></think><answer>42</answer>",          // duplicated </think>
      "<think>x</think><answer>42</answer><answer>42</answer>",
      "<think>x</think><answer>4<answer>2</answer>",
      "<think>x</think><answer>42</answer></answer>",
      "</think><think>x<answer>42</answer>",
      "<think>x</answer></think><answer>42",
      "<THINK>x</THINK><answer>42</answer>",                  // case-sensitive
      "<think >x</think><answer>42</answer>",
      "<think>x</think><answer>42</answer>\v",                // \v is not whitespace here
  };
  for (const char* c : bad) EXPECT_FALSE(formatted(c)) << c;
  // With the opening tag in the prompt, another <think> in the completion is a duplicate.
  EXPECT_FALSE(formatted("<think>x</think><answer>42</answer>", true));
  EXPECT_FALSE(formatted("x<answer>42</answer>", true));
  EXPECT_FALSE(formatted("x</think>y<answer>42</answer>", true));
  // Without it, a completion that starts inside the reasoning lacks its opening tag.
  EXPECT_FALSE(formatted("x</think><answer>42</answer>", false));
}

TEST(Reward, ScoreCombinesAccuracyAndFormat) {
  const Problem p = arith(6, '*', 7, 42);
  const RewardWeights w;  // accuracy 1.0, format 0.1
  RewardResult r = score(p, "<think>6*7</think>\n<answer>42</answer>", w);
  EXPECT_TRUE(r.correct && r.formatted);
  EXPECT_DOUBLE_EQ(r.total, 1.1);
  r = score(p, "<think>6*7</think>\n<answer>41</answer>", w);
  EXPECT_TRUE(!r.correct && r.formatted);
  EXPECT_DOUBLE_EQ(r.total, 0.1);
  r = score(p, "the answer is <answer>42</answer>", w);  // correct, not well-formed
  EXPECT_TRUE(r.correct && !r.formatted);
  EXPECT_DOUBLE_EQ(r.total, 1.0);
  r = score(p, "42", w);
  EXPECT_FALSE(r.correct || r.formatted);
  EXPECT_EQ(r.total, 0.0);
  // Strict answers: extra words fail; the first answer is the one judged.
  EXPECT_FALSE(score(p, "<think>x</think><answer>42.</answer>").correct);
  EXPECT_FALSE(score(p, "<think>x</think><answer>= 42</answer>").correct);
  EXPECT_FALSE(score(p, "<answer>41</answer><answer>42</answer>").correct);
  // think_in_prompt changes the format, not the accuracy.
  r = score(p, "6*7 is 42</think><answer>42</answer>", w, true);
  EXPECT_TRUE(r.correct && r.formatted);
  r = score(p, "6*7 is 42</think><answer>42</answer>", w, false);
  EXPECT_TRUE(r.correct && !r.formatted);
  // Custom weights (the Countdown reference reward: 1.0 correct, 0.1 well-formed but wrong).
  const Problem c = countdown({2, 3, 7}, 13);
  r = score(c, "<think>t</think><answer>2*3+7</answer>", {0.9, 0.1});
  EXPECT_TRUE(r.correct);
  EXPECT_DOUBLE_EQ(r.total, 1.0);
  EXPECT_FALSE(score(c, "<think>t</think><answer>2*3+7+0</answer>").correct);  // uses a number not given
  EXPECT_FALSE(score(c, "<think>t</think><answer>13</answer>").correct);
}

TEST(Reward, RealProblemsWithTheirWorkedSolutions) {
  for (TaskKind k : {TaskKind::Arithmetic, TaskKind::Countdown})
    for (int d = 1; d <= kMaxDifficulty; ++d)
      for (uint64_t i = 0; i < 10; ++i) {
        const Problem p = make_problem(k, d, 3, i);
        const std::string good = "<think>\n" + worked_solution(p) + "\n</think>\n<answer>" + p.answer + "</answer>";
        RewardResult r = score(p, good);
        EXPECT_TRUE(r.correct && r.formatted) << good;
        r = score(p, good.substr(8), {}, true);
        EXPECT_TRUE(r.correct && r.formatted) << good;
        const std::string wrong = "<think>guess</think><answer>" + plausible_wrong_answer(p, i) + "</answer>";
        r = score(p, wrong);
        EXPECT_TRUE(!r.correct && r.formatted) << wrong;
      }
}

TEST(Reward, FuzzNeverThrowsOrCrashes) {
  const Problem probs[] = {arith(6, '*', 7, 42), countdown({2, 3, 7}, 13), make_problem(TaskKind::Countdown, 6, 9, 1)};
  const char* pieces[] = {"<think>", "</think>", "<answer>", "</answer>", "<think", "</answer", "<", ">", "/",
                          " ", "\n", "\t", "42", "13", "2*3+7", "(", ")", "+", "-", "*", "/", "0",
                          "999999999999999999999", "\xff", "\xc3", "\xe2\x80", "\xf0\x9f\x98\x80"};
  SplitMix64 rng(1234);
  int formatted_count = 0, correct_count = 0;
  for (int it = 0; it < 30000; ++it) {
    std::string s;
    const uint64_t mode = rng.uniform(3);
    const uint64_t len = rng.uniform(64);
    for (uint64_t j = 0; j < len; ++j) {
      if (mode == 0) {
        s.push_back(char(rng.uniform(256)));  // raw bytes, NULs included
      } else if (mode == 1) {
        s += pieces[rng.uniform(std::size(pieces))];  // tag soup
      } else {  // a well-formed completion with random mutations
        if (j == 0) s = "<think>2*3+7</think>\n<answer>2*3+7</answer>";
        if (!s.empty() && rng.uniform(4) == 0) {
          const size_t at = size_t(rng.uniform(s.size()));
          switch (rng.uniform(3)) {
            case 0: s.erase(at, 1 + size_t(rng.uniform(8))); break;
            case 1: s.insert(at, pieces[rng.uniform(std::size(pieces))]); break;
            default: s[at] = char(rng.uniform(256)); break;
          }
        }
      }
    }
    for (const Problem& p : probs)
      for (bool tip : {false, true}) {
        RewardResult r;
        ASSERT_NO_THROW(r = score(p, s, {}, tip));
        EXPECT_TRUE(r.total == 0.0 || r.total == 0.1 || r.total == 1.0 || r.total == 1.1);
        EXPECT_EQ(r.formatted, parse_completion(s, tip).has_value());
        formatted_count += r.formatted;
        correct_count += r.correct;
      }
  }
  EXPECT_GT(formatted_count, 0);  // the fuzz reaches both outcomes
  EXPECT_GT(correct_count, 0);
  // Very long inputs: a megabyte of reasoning, of tags, and of NULs.
  const Problem& p = probs[1];
  std::string big = "<think>" + std::string(1 << 20, 'x') + "</think><answer>2*3+7</answer>";
  RewardResult r = score(p, big);
  EXPECT_TRUE(r.correct && r.formatted);
  std::string soup;
  for (int i = 0; i < 100000; ++i) soup += pieces[i % 4];
  EXPECT_FALSE(score(p, soup).formatted);
  EXPECT_FALSE(score(p, std::string(1 << 20, '\0')).formatted);
  std::string long_answer = "<think></think><answer>" + std::string(1 << 16, '(') + "</answer>";
  EXPECT_FALSE(score(p, long_answer).correct);
}
