// tasks.h — the verifiable problems of seek's recipe: multi-digit arithmetic and Countdown. Generates
// them deterministically, assigns each to the train or held-out split by its content, checks answers
// by rule (the accuracy reward), and writes step-by-step worked solutions (for the pretraining corpus).
//
// Shared by the synthetic pretraining corpus (data/corpus.h) and the GRPO rewards. It does NOT parse a
// model's whole completion (the <think>/<answer> format reward belongs to the reward code; answer_span
// below is only the small helper both need), and it knows nothing about tokens or chat formats.
//
// Determinism. Every random choice comes from SplitMix64 (util/rng.h; uniform() draws), never from std::
// distributions, whose output differs between standard libraries: the same (kind, difficulty, seed,
// index) gives the same problem on every machine and compiler.
//
// Difficulty 1..kMaxDifficulty (6):
//   arithmetic  1: a ± b, 1–2 digits       2: a ± b, 3 digits; a * b, 2×1 digits
//               3: a ± b, 4 digits; a * b, 2×2     4: a * b, 3×3
//               5: a * b, 3×4 (either order)       6: a * b, 4×4
//     (subtraction always has a ≥ b, so answers are ≥ 0; at levels 2–3 half the problems multiply)
//   countdown   1: 2 numbers in 1..10      2: 3 numbers in 1..10      3: 3 numbers in 1..25
//               4: 4 numbers in 1..50      5: 4 numbers in 1..100     6: 5 numbers in 1..100
//     The target is the value of a random expression tree over all the numbers (so a solution always
//     exists), with + − × ÷, every intermediate result a positive integer (division exact), and the
//     target in 1..999 (after 64 failed tries: the sum of the numbers).
//
// Countdown rule (TinyZero's variant): the answer is an expression that uses EACH given number EXACTLY
// ONCE (a number given twice is used twice), only binary + - * / and parentheses (no unary minus, no
// "= target" suffix, no other characters), every division exact, evaluating to the target. Intermediate
// results may be negative in an answer; they are only kept positive when we construct problems.
//
// Splits. split_of() hashes a canonical key of the problem's content (kind, operation, operands with
// commutative ones sorted; for Countdown the sorted numbers and the target), so a problem and any
// reordering of it land in the same split, and no held-out question can ever appear in training.
// The given numbers of a Countdown question are listed in sorted order, so equal content means equal
// question text.
#pragma once
#include "util/rng.h"  // SplitMix64, mix64
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace seek {

enum class TaskKind { Arithmetic, Countdown };
enum class Split { Train, HeldOut };

inline constexpr int kMaxDifficulty = 6;
inline constexpr double kDefaultHeldOutFraction = 0.1;

// One step of a Countdown construction: value(lhs) op value(rhs). A reference r < numbers.size() is
// the given number numbers[r]; r ≥ numbers.size() is the result of step r - numbers.size().
struct CountdownStep {
  int lhs = 0, rhs = 0;
  char op = '+';  // + - * /
};

struct Problem {
  TaskKind kind = TaskKind::Arithmetic;
  int difficulty = 1;
  std::string question;          // the user's text, e.g. "What is 123 * 456?"
  std::string answer;            // a reference answer: the integer, or one Countdown expression
  std::vector<int64_t> numbers;  // arithmetic: {a, b}; countdown: the given numbers, sorted
  char op = '+';                 // arithmetic only: + - *
  int64_t target = 0;            // arithmetic: the result; countdown: the number to reach
  std::vector<CountdownStep> steps;  // countdown only: the construction; the last step gives target
  uint64_t id = 0;               // 64-bit hash of the canonical content (same content, same id)
};

// A problem of any split. Throws Error when difficulty is outside 1..kMaxDifficulty.
Problem make_problem(TaskKind kind, int difficulty, uint64_t seed, uint64_t index);

// The split of a problem: HeldOut when the hash of its canonical content, mapped to [0, 1), is below
// heldout_fraction. Throws Error when heldout_fraction is outside [0, 1].
Split split_of(const Problem& p, double heldout_fraction = kDefaultHeldOutFraction);

// The index-th problem of the requested split: tries make_problem(kind, difficulty, seed, i') over a
// deterministic sequence of candidate indices derived from `index` until one falls in `split`. Throws
// Error when the split is empty (heldout_fraction 0 for HeldOut, 1 for Train) or no candidate is found
// in 100000 tries (a difficulty whose problem space is too small for the fraction asked).
Problem make_split_problem(TaskKind kind, int difficulty, Split split, uint64_t seed, uint64_t index,
                           double heldout_fraction = kDefaultHeldOutFraction);

// --- Answer checking (the rule-based accuracy reward) ------------------------------------------------

// Strict integer: optional surrounding whitespace (space, tab, CR, LF), an optional + or - sign, 1–18
// digits, nothing else. Returns nullopt for anything else.
std::optional<int64_t> parse_strict_int(std::string_view text);

// Evaluates a Countdown expression safely: at most 256 bytes, nesting depth at most 32, non-negative
// integer literals of at most 12 digits, binary + - * / with the usual precedence and left
// associativity, parentheses, spaces/tabs/newlines between tokens; no unary operators. Every operation
// is overflow-checked and every division must be exact with a non-zero divisor. Returns nullopt for any
// violation; on success fills `used` (if given) with the literals in order of appearance.
// Never throws, never reads out of bounds, runs in time linear in the input.
std::optional<int64_t> eval_countdown(std::string_view expr, std::vector<int64_t>* used = nullptr);

// Whether answer_text answers p: arithmetic — parse_strict_int equals the result; Countdown —
// eval_countdown succeeds, equals the target, and the literals used are exactly the given numbers
// (as multisets). Never throws.
bool check_answer(const Problem& p, std::string_view answer_text);

// The text between the first "<answer>" and the first "</answer>" after it, or nullopt. A helper only:
// the format reward decides what a well-formed completion is.
std::optional<std::string_view> answer_span(std::string_view text);

// --- Worked solutions ----------------------------------------------------------------------------

// A worked solution and the answer it arrives at.
struct Worked {
  std::string text;    // the reasoning, several lines, no tags; its last line states the result
  std::string answer;  // what the reasoning concludes (the reference answer unless there was a slip)
};

// Step-by-step reasoning. Arithmetic: column arithmetic as a scratchpad in which every line follows
// from the line above it alone (the operands left, the carry or borrow, the digits written so far,
// then the next column: "482+379 c0 s6: 2+9+0=11"); a product is a block per non-zero digit of the
// shorter operand, then additions of the partial products (tasks.cpp shows the layout). Countdown:
// the construction step by step, at difficulty >= 3 preceded by one random attempt that misses the
// target (when the random attempt happens to hit it, it is omitted).
// With slip_seed, exactly one step contains an arithmetic slip and the answer is wrong
// (check_answer(p, answer) is false, guaranteed): arithmetic — one column's result is off by 1..3 and
// later columns carry on correctly from it; Countdown — one step of the construction
// uses another operator, later steps carry on correctly, and the last step claims the target.
// Without it the answer is correct. `seed` drives the failed attempt (and the slip).
// Throws Error for a hand-made problem that lacks what this reads (arithmetic: two operands in
// 0..999999999 and op + - *; Countdown: ≥ 2 numbers and valid steps reaching the target).
Worked work_problem(const Problem& p, uint64_t seed, std::optional<uint64_t> slip_seed = std::nullopt);

// An answer that looks like a guess and is wrong (check_answer false, guaranteed), for the direct style
// of hard problems: arithmetic — the result with one or two digits changed (same sign and length, or
// ±1..3 for a one-digit result); Countdown — a random expression over all the numbers that misses the
// target (after 16 tries: the reference expression with its last operator changed). Throws Error as
// work_problem does.
std::string plausible_wrong_answer(const Problem& p, uint64_t seed);

// work_problem(p, p.id).text with no slip: the correct reasoning, ending with the answer.
std::string worked_solution(const Problem& p);

// A Countdown expression for the construction `steps` over `numbers` (fewest parentheses that keep
// the tree's meaning). The last step is the root. Throws Error unless the steps are one expression
// tree over all the numbers (numbers.size() - 1 steps, every number and earlier step used once).
std::string countdown_expression(const std::vector<int64_t>& numbers, const std::vector<CountdownStep>& steps);

const char* task_kind_name(TaskKind kind);  // "arithmetic" | "countdown"
const char* split_name(Split split);        // "train" | "heldout"

}  // namespace seek
