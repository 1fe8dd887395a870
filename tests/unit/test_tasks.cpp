// Tasks (rl/tasks.h): deterministic generators with solutions that check out, content-hash splits that
// never overlap, the strict answer checker's rules, a 100k-input fuzz of the parsers (no exception, no
// crash, no UB under the sanitizers), and worked solutions that are right without a slip and wrong with one.
// GCC 12 with the sanitizers warns -Wmaybe-uninitialized inside libstdc++'s std::regex automaton (a false
// positive, in <functional>); the warning is off for this file, as for test_plot.cpp, which uses it too.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "data/tasks.h"
#include "util/error.h"

using namespace seek;

namespace {

const TaskKind kKinds[] = {TaskKind::Arithmetic, TaskKind::Countdown};

Problem countdown(std::vector<int64_t> numbers, int64_t target) {
  Problem p;
  p.kind = TaskKind::Countdown;
  p.numbers = std::move(numbers);
  p.target = target;
  return p;
}

}  // namespace

TEST(Tasks, Deterministic) {
  for (TaskKind k : kKinds)
    for (int d = 1; d <= kMaxDifficulty; ++d)
      for (uint64_t i = 0; i < 20; ++i) {
        Problem a = make_problem(k, d, 7, i), b = make_problem(k, d, 7, i);
        EXPECT_EQ(a.question, b.question);
        EXPECT_EQ(a.answer, b.answer);
        EXPECT_EQ(a.id, b.id);
      }
  // Pinned: the generators must give these on every machine and standard library.
  EXPECT_EQ(make_problem(TaskKind::Arithmetic, 4, 42, 0).question, "What is 506 * 920?");
  EXPECT_EQ(make_problem(TaskKind::Countdown, 4, 42, 0).question, "Use 9, 14, 32, 34 to make 196. Each number exactly once; + - * / and parentheses.");
}

TEST(Tasks, DifficultyOutOfRangeThrows) {
  EXPECT_THROW(make_problem(TaskKind::Arithmetic, 0, 1, 0), Error);
  EXPECT_THROW(make_problem(TaskKind::Countdown, kMaxDifficulty + 1, 1, 0), Error);
  EXPECT_THROW(split_of(make_problem(TaskKind::Arithmetic, 1, 1, 0), 1.5), Error);
  EXPECT_THROW(make_split_problem(TaskKind::Arithmetic, 3, Split::HeldOut, 1, 0, 0.0), Error);
  EXPECT_THROW(make_split_problem(TaskKind::Arithmetic, 3, Split::Train, 1, 0, 1.0), Error);
}

TEST(Tasks, ReferenceAnswersCheckOut) {
  for (TaskKind k : kKinds)
    for (int d = 1; d <= kMaxDifficulty; ++d)
      for (uint64_t i = 0; i < 300; ++i) {
        Problem p = make_problem(k, d, 3, i);
        ASSERT_TRUE(check_answer(p, p.answer)) << p.question << " -> " << p.answer;
        EXPECT_EQ(p.difficulty, d);
        if (k == TaskKind::Countdown) {
          EXPECT_GE(p.target, 1);
          EXPECT_LE(p.target, 999);
          EXPECT_TRUE(std::is_sorted(p.numbers.begin(), p.numbers.end()));
          EXPECT_EQ(p.steps.size() + 1, p.numbers.size());
        } else {
          EXPECT_GE(p.target, 0);
        }
      }
  // The hard case: 3-4 digit products.
  Problem p = make_problem(TaskKind::Arithmetic, 6, 1, 0);
  EXPECT_EQ(p.op, '*');
  EXPECT_EQ(std::to_string(p.numbers[0]).size(), 4u);
  EXPECT_EQ(std::to_string(p.numbers[1]).size(), 4u);
}

TEST(Tasks, SplitsAreDisjointAndSized) {
  std::set<std::string> train, held;
  for (TaskKind k : kKinds)
    for (int d = 1; d <= kMaxDifficulty; ++d)
      for (uint64_t i = 0; i < 20000 / 12; ++i) {
        Problem t = make_split_problem(k, d, Split::Train, 11, i);
        ASSERT_EQ(split_of(t), Split::Train);
        train.insert(t.question);
        Problem h = make_split_problem(k, d, Split::HeldOut, 11, i);
        ASSERT_EQ(split_of(h), Split::HeldOut);
        held.insert(h.question);
      }
  EXPECT_GT(held.size(), 1000u);
  for (const std::string& q : held) ASSERT_EQ(train.count(q), 0u) << q;

  // About 10% of raw problems are held out (hard levels: nearly all distinct).
  int n = 0, h = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    h += split_of(make_problem(TaskKind::Arithmetic, 5, 5, i)) == Split::HeldOut;
    h += split_of(make_problem(TaskKind::Countdown, 5, 5, i)) == Split::HeldOut;
    n += 2;
  }
  EXPECT_NEAR(double(h) / n, 0.1, 0.015);
  // Another fraction.
  int h3 = 0;
  for (uint64_t i = 0; i < 10000; ++i) h3 += split_of(make_problem(TaskKind::Arithmetic, 6, 5, i), 0.3) == Split::HeldOut;
  EXPECT_NEAR(h3 / 10000.0, 0.3, 0.03);
}

TEST(Tasks, SplitFollowsContentNotOrder) {
  Problem a = make_problem(TaskKind::Arithmetic, 4, 1, 0);
  Problem b = a;
  std::swap(b.numbers[0], b.numbers[1]);  // 123 * 456 and 456 * 123 are the same problem
  for (double f : {0.1, 0.3, 0.5, 0.7, 0.9}) EXPECT_EQ(split_of(a, f), split_of(b, f));
  Problem c = make_problem(TaskKind::Countdown, 5, 1, 0);
  Problem e = c;
  std::reverse(e.numbers.begin(), e.numbers.end());
  for (double f : {0.1, 0.3, 0.5, 0.7, 0.9}) EXPECT_EQ(split_of(c, f), split_of(e, f));
}

TEST(Tasks, StrictInteger) {
  EXPECT_EQ(parse_strict_int("42"), 42);
  EXPECT_EQ(parse_strict_int("  -17\n"), -17);
  EXPECT_EQ(parse_strict_int("+5"), 5);
  EXPECT_EQ(parse_strict_int("123456789012345678"), 123456789012345678LL);
  for (const char* bad : {"", " ", "-", "+", "4 2", "42.0", "1e3", "1,000", "0x10", "42a", "--1",
                          "1234567890123456789", "forty-two", "= 42"})
    EXPECT_FALSE(parse_strict_int(bad).has_value()) << bad;
  Problem p = make_problem(TaskKind::Arithmetic, 4, 1, 0);
  EXPECT_TRUE(check_answer(p, " " + p.answer + " "));
  EXPECT_FALSE(check_answer(p, p.answer + "0"));
  EXPECT_FALSE(check_answer(p, "The answer is " + p.answer));
}

TEST(Tasks, CountdownExpressions) {
  EXPECT_EQ(eval_countdown("1 + 2 * 3"), 7);
  EXPECT_EQ(eval_countdown("(1 + 2) * 3"), 9);
  EXPECT_EQ(eval_countdown("10 - 4 - 3"), 3);     // left associative
  EXPECT_EQ(eval_countdown("24 / 4 / 2"), 3);
  EXPECT_EQ(eval_countdown("2 - 5"), -3);          // negative intermediates are allowed in answers
  EXPECT_EQ(eval_countdown("\t( ( 7 ) )\n"), 7);
  for (const char* bad : {"", "()", "1 +", "+1", "-1 + 2", "1 / 0", "7 / 2", "1 2", "(1 + 2", "1 + 2)",
                          "1 = 1", "2 ^ 3", "1.5 + 1", "1000000000000 + 1", "999999999999 * 999999999999"})
    EXPECT_FALSE(eval_countdown(bad).has_value()) << bad;
  // Overflow through chained products is caught.
  EXPECT_FALSE(eval_countdown("999999999999 * 999999999 * 99").has_value());
  // Depth and length bounds.
  std::string deep = std::string(32, '(') + "1" + std::string(32, ')');
  EXPECT_EQ(eval_countdown(deep), 1);
  std::string deeper = std::string(33, '(') + "1" + std::string(33, ')');
  EXPECT_FALSE(eval_countdown(deeper).has_value());
  std::string longer = "1";
  while (longer.size() <= 256) longer += " + 1";
  EXPECT_FALSE(eval_countdown(longer).has_value());
  // The literals used, in order.
  std::vector<int64_t> used;
  EXPECT_EQ(eval_countdown("(55 - 36) * 7 - 19", &used), 114);
  EXPECT_EQ(used, (std::vector<int64_t>{55, 36, 7, 19}));
}

TEST(Tasks, CountdownUsesEachNumberExactlyOnce) {
  Problem p = countdown({7, 19, 36, 55}, 114);
  EXPECT_TRUE(check_answer(p, "(55 - 36) * 7 - 19"));
  EXPECT_TRUE(check_answer(p, " 7 * (55 - 36) - 19 "));
  EXPECT_FALSE(check_answer(p, "(55 - 36) * 7 - 19 = 114"));
  EXPECT_FALSE(check_answer(p, "114"));                     // a number not given
  EXPECT_FALSE(check_answer(p, "(55 - 36) * 7 - 19 + 0"));  // extra literal
  EXPECT_FALSE(check_answer(p, "55 + 36 + 19 + 7 - 3"));
  EXPECT_FALSE(check_answer(p, "55 + 36 + 19 + 7"));        // all numbers, wrong value
  Problem q = countdown({3, 3, 8}, 17);
  EXPECT_TRUE(check_answer(q, "3 * 3 + 8"));
  EXPECT_FALSE(check_answer(q, "3 * 8 - 7"));
  Problem r = countdown({2, 5, 9}, 9);
  EXPECT_FALSE(check_answer(r, "9"));  // unused numbers: exactly once means all of them
}

TEST(Tasks, AnswerSpan) {
  EXPECT_EQ(answer_span("<think>x</think><answer>42</answer>"), "42");
  EXPECT_EQ(answer_span("<answer></answer>"), "");
  EXPECT_FALSE(answer_span("<answer>42").has_value());
  EXPECT_FALSE(answer_span("42</answer><answer>").has_value());
}

TEST(Tasks, FuzzNeverCrashesOrThrows) {
  SplitMix64 rng(2024);
  const Problem probs[] = {make_problem(TaskKind::Arithmetic, 4, 1, 1), make_problem(TaskKind::Countdown, 4, 1, 1),
                           countdown({7, 19, 36, 55}, 114)};
  static const char* kTokens[] = {"0", "1", "7", "19", "36", "55", "999999999999", "9223372036854775807", "+", "-",
                                  "*", "/", "(", ")", " ", "\n", "=", "<answer>", "</answer>", "00", "2"};
  int accepted = 0;
  for (int it = 0; it < 100000; ++it) {
    std::string s;
    if (it % 2 == 0) {
      size_t len = rng.uniform(300);
      for (size_t k = 0; k < len; ++k) s += char(rng.uniform(256));
    } else {
      size_t len = rng.uniform(80);
      for (size_t k = 0; k < len; ++k) s += kTokens[rng.uniform(sizeof(kTokens) / sizeof(kTokens[0]))];
    }
    for (const Problem& p : probs) {
      bool ok = false;
      ASSERT_NO_THROW(ok = check_answer(p, s));
      accepted += ok;
    }
    ASSERT_NO_THROW((void)eval_countdown(s));
    ASSERT_NO_THROW((void)parse_strict_int(s));
    ASSERT_NO_THROW((void)answer_span(s));
  }
  EXPECT_LT(accepted, 100);
}

TEST(Tasks, WorkedSolutions) {
  for (TaskKind k : kKinds)
    for (int d = 1; d <= kMaxDifficulty; ++d)
      for (uint64_t i = 0; i < 200; ++i) {
        Problem p = make_problem(k, d, 9, i);
        Worked w = work_problem(p, i);
        ASSERT_TRUE(check_answer(p, w.answer)) << w.text;
        std::string last = w.text.substr(w.text.rfind('\n') + 1);
        EXPECT_NE(last.find(w.answer), std::string::npos) << w.text;
        Worked s = work_problem(p, i, 1000 + i);
        ASSERT_FALSE(check_answer(p, s.answer)) << s.text;
        EXPECT_NE(s.text, w.text);
        EXPECT_FALSE(check_answer(p, plausible_wrong_answer(p, i)));
      }
  Problem p = make_problem(TaskKind::Arithmetic, 4, 1, 0);
  EXPECT_EQ(worked_solution(p), work_problem(p, p.id).text);
}

// Reads a worked arithmetic solution line by line and counts the column lines whose result is wrong,
// checking that every other part of every line follows from the line above it alone (the operands
// lose their last digit, the carry/borrow and the digits written come from the previous result), so
// that a small model can execute it. Fails the test on a line that does not.
static int wrong_columns(const std::string& text) {
  static const std::regex column(R"(^(\d+)([-+*])(\d+) ([cb])(\d+)(?: s(\d+))?: (\d)([-+*])(\d)([-+])(\d)=(-?\d+)(?: gives (\d))?$)");
  static const std::regex block_end(R"(^([cb])(\d+) s(\d+)$)");
  int wrong = 0;
  bool in_block = false;
  std::string A, B, S;
  int64_t carry = 0, r = 0;
  char op = '+';
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, column)) {
      const std::string a = m[1], b = m[3];
      if (in_block) {  // continues the block: operands shortened, state from the previous column
        EXPECT_EQ(a, A.substr(0, A.size() - 1)) << line;
        EXPECT_EQ(b, op == '*' ? B : B.substr(0, B.size() - 1)) << line;
        EXPECT_EQ(m[6].str(), S) << line;
        EXPECT_EQ(std::stoll(m[5]), carry) << line;
      } else {
        EXPECT_EQ(std::stoll(m[5]), 0) << line;
        EXPECT_FALSE(m[6].matched) << line;
      }
      op = m[2].str()[0];
      EXPECT_EQ(m[8].str()[0], op) << line;
      EXPECT_EQ(m[7].str()[0], a.back()) << line;
      EXPECT_EQ(m[9].str(), op == '*' ? b : std::string(1, b.back())) << line;
      EXPECT_EQ(m[11].str(), m[5].str()) << line;
      const int64_t x = std::stoll(m[7]), y = std::stoll(m[9]), k = std::stoll(m[11]);
      r = std::stoll(m[12]);
      const int64_t truth = op == '+' ? x + y + k : op == '-' ? x - y - k : x * y + k;
      wrong += r != truth;
      EXPECT_EQ(m[13].matched, op == '-' && r < 0) << line;
      if (m[13].matched) {
        EXPECT_EQ(std::stoll(m[13]), r + 10) << line;
      }
      A = a;
      B = b;
      S = std::string(1, char('0' + (op == '-' ? (r < 0 ? r + 10 : r) : r % 10))) + S;
      carry = op == '-' ? r < 0 : r / 10;
      in_block = true;
    } else if (std::regex_match(line, m, block_end)) {
      EXPECT_TRUE(in_block) << line;
      EXPECT_EQ(std::stoll(m[2]), carry) << line;
      EXPECT_EQ(m[3].str(), S) << line;
      in_block = false;
      S.clear();
      carry = 0;
    } else {
      EXPECT_FALSE(in_block) << "a block ends with its carry and digits: " << line;
    }
  }
  return wrong;
}

TEST(Tasks, WorkedArithmeticIsLocal) {
  for (int d = 1; d <= kMaxDifficulty; ++d)
    for (uint64_t i = 0; i < 300; ++i) {
      Problem p = make_problem(TaskKind::Arithmetic, d, 11, i);
      Worked w = work_problem(p, i);
      EXPECT_EQ(wrong_columns(w.text), 0) << w.text;
      Worked s = work_problem(p, i, 5000 + i);
      EXPECT_EQ(wrong_columns(s.text), 1) << s.text;  // exactly one slipped column
    }
}

TEST(Tasks, WorkedExamplesReadWell) {
  Problem m;
  m.kind = TaskKind::Arithmetic;
  m.op = '*';
  m.numbers = {123, 45};
  m.target = 5535;
  m.answer = "5535";
  EXPECT_EQ(worked_solution(m),
            "123 * 45\n"
            "123*5 c0: 3*5+0=15\n12*5 c1 s5: 2*5+1=11\n1*5 c1 s15: 1*5+1=6\nc0 s615\n123 * 5 = 615\n"
            "123*4 c0: 3*4+0=12\n12*4 c1 s2: 2*4+1=9\n1*4 c0 s92: 1*4+0=4\nc0 s492\n"
            "123 * 4 = 492, so 123 * 40 = 4920\n"
            "0615+4920 c0: 5+0+0=5\n061+492 c0 s5: 1+2+0=3\n06+49 c0 s35: 6+9+0=15\n0+4 c1 s535: 0+4+1=5\n"
            "c0 s5535\nSo 123 * 45 = 5535.");
  Problem s = m;
  s.op = '-';
  s.numbers = {1234, 507};
  s.target = 727;
  s.answer = "727";
  EXPECT_EQ(worked_solution(s),
            "1234 - 507\n1234-0507 b0: 4-7-0=-3 gives 7\n123-050 b1 s7: 3-0-1=2\n12-05 b0 s27: 2-5-0=-3 gives 7\n"
            "1-0 b1 s727: 1-0-1=0\nb0 s0727\nSo 1234 - 507 = 727.");
  Problem c = countdown({7, 19, 36, 55}, 114);
  c.difficulty = 2;
  c.steps = {{3, 2, '-'}, {4, 0, '*'}, {5, 1, '-'}};
  c.answer = countdown_expression(c.numbers, c.steps);
  EXPECT_EQ(c.answer, "(55 - 36) * 7 - 19");
  EXPECT_EQ(worked_solution(c), "Try 55 - 36 = 19\n19 * 7 = 133\n133 - 19 = 114\nFound: (55 - 36) * 7 - 19 = 114");
}

TEST(Tasks, MalformedHandMadeProblemsThrow) {
  Problem a;
  a.kind = TaskKind::Arithmetic;
  a.numbers = {5};
  EXPECT_THROW(work_problem(a, 1), Error);
  EXPECT_THROW(plausible_wrong_answer(a, 1), Error);
  Problem c = countdown({7, 19, 36, 55}, 114);
  EXPECT_THROW(work_problem(c, 1), Error);  // no steps
  c.steps = {{3, 2, '-'}, {4, 0, '*'}, {4, 1, '-'}};  // step 0 used twice, step 1 never
  EXPECT_THROW(work_problem(c, 1), Error);
  EXPECT_THROW(countdown_expression(c.numbers, c.steps), Error);
  c.steps = {{3, 2, '-'}, {4, 0, '*'}, {5, 9, '-'}};  // reference out of range
  EXPECT_THROW(countdown_expression(c.numbers, c.steps), Error);
  c.steps = {{3, 2, '-'}, {4, 0, '*'}, {5, 1, '+'}};  // valid tree, wrong target
  EXPECT_THROW(work_problem(c, 1), Error);
  c.steps = {{3, 2, '-'}, {4, 0, '*'}, {5, 1, '-'}};
  EXPECT_NO_THROW(work_problem(c, 1, 5));
}
