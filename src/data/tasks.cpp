// tasks.cpp — arithmetic and Countdown generators, content-hash splits, the safe answer checker and
// worked solutions (see tasks.h for the rules). Does not parse whole completions or know about tokens.
#include "data/tasks.h"

#include <algorithm>
#include <climits>

#include "util/error.h"

namespace seek {

namespace {

uint64_t fmix(uint64_t z) { return splitmix64_mix(z); }

uint64_t hash_bytes(std::string_view s) {  // FNV-1a, then a finalizer
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return fmix(h);
}

int64_t pow10i(int k) {
  int64_t r = 1;
  for (int i = 0; i < k; ++i) r *= 10;
  return r;
}

int64_t random_digits(SplitMix64& rng, int digits) {
  if (digits <= 1) return rng.range(1, 9);
  return rng.range(pow10i(digits - 1), pow10i(digits) - 1);
}

std::string num(int64_t v) { return std::to_string(v); }

// ---- Countdown constructions ----

// The value of every reference (given numbers, then steps); nullopt when a step is not a valid integer
// operation (division inexact or by zero, overflow).
std::optional<std::vector<int64_t>> step_values(const std::vector<int64_t>& numbers,
                                                const std::vector<CountdownStep>& steps) {
  std::vector<int64_t> v(numbers);
  for (const CountdownStep& s : steps) {
    int64_t x = v[s.lhs], y = v[s.rhs], r = 0;
    switch (s.op) {
      case '+': if (__builtin_add_overflow(x, y, &r)) return std::nullopt; break;
      case '-': if (__builtin_sub_overflow(x, y, &r)) return std::nullopt; break;
      case '*': if (__builtin_mul_overflow(x, y, &r)) return std::nullopt; break;
      default:
        if (y == 0 || (x == INT64_MIN && y == -1) || x % y != 0) return std::nullopt;
        r = x / y;
    }
    v.push_back(r);
  }
  return v;
}

// A random construction over all the numbers, every intermediate a positive integer: repeatedly take
// two items of the pool and combine them with a random valid operator.
std::vector<CountdownStep> random_construction(const std::vector<int64_t>& numbers, SplitMix64& rng) {
  struct Item { int ref; int64_t value; };
  std::vector<Item> pool;
  for (size_t i = 0; i < numbers.size(); ++i) pool.push_back({int(i), numbers[i]});
  std::vector<CountdownStep> steps;
  int next_ref = int(numbers.size());
  while (pool.size() > 1) {
    size_t i = rng.uniform(pool.size());
    size_t j = rng.uniform(pool.size() - 1);
    if (j >= i) ++j;
    Item a = pool[i], b = pool[j];
    if (a.value < b.value) std::swap(a, b);  // larger first, so - and / stay positive
    struct Cand { char op; int64_t value; };
    Cand cands[4];
    int n = 0;
    cands[n++] = {'+', a.value + b.value};
    if (a.value > b.value) cands[n++] = {'-', a.value - b.value};
    cands[n++] = {'*', a.value * b.value};
    if (b.value > 1 && a.value % b.value == 0) cands[n++] = {'/', a.value / b.value};
    Cand c = cands[rng.uniform(uint64_t(n))];
    steps.push_back({a.ref, b.ref, c.op});
    pool.erase(pool.begin() + std::max(i, j));
    pool.erase(pool.begin() + std::min(i, j));
    pool.push_back({next_ref++, c.value});
  }
  return steps;
}

int prec(char op) { return (op == '+' || op == '-') ? 1 : 2; }

std::string expr_of(const std::vector<int64_t>& numbers, const std::vector<CountdownStep>& steps, int ref,
                    int* out_prec) {
  int n = int(numbers.size());
  if (ref < n) {
    *out_prec = 3;
    return num(numbers[ref]);
  }
  const CountdownStep& s = steps[ref - n];
  int lp = 0, rp = 0;
  std::string l = expr_of(numbers, steps, s.lhs, &lp);
  std::string r = expr_of(numbers, steps, s.rhs, &rp);
  int p = prec(s.op);
  if (lp < p) l = "(" + l + ")";
  if (rp < p || (rp == p && (s.op == '-' || s.op == '/'))) r = "(" + r + ")";
  *out_prec = p;
  return l + " " + s.op + " " + r;
}

std::string join_numbers(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + num(v[i]);
  return s;
}

void check_difficulty(int difficulty) {
  if (difficulty < 1 || difficulty > kMaxDifficulty)
    throw Error(strfmt("tasks: difficulty = %d is outside 1..%d", difficulty, kMaxDifficulty));
}

std::string canonical_key(const Problem& p) {
  std::string k;
  if (p.kind == TaskKind::Arithmetic) {
    int64_t a = p.numbers.size() > 0 ? p.numbers[0] : 0, b = p.numbers.size() > 1 ? p.numbers[1] : 0;
    if ((p.op == '+' || p.op == '*') && b < a) std::swap(a, b);
    k = "A|";
    k += p.op;
    k += "|";
    k += num(a);
    k += "|";
    k += num(b);
  } else {
    std::vector<int64_t> v = p.numbers;
    std::sort(v.begin(), v.end());
    k = "C|";
    k += num(p.target);
    for (int64_t x : v) {
      k += "|";
      k += num(x);
    }
  }
  return k;
}

Problem make_arithmetic(int d, SplitMix64& rng) {
  Problem p;
  p.kind = TaskKind::Arithmetic;
  p.difficulty = d;
  int da = 1, db = 1;
  char op = '+';
  bool mul = d >= 4 || (d >= 2 && rng.uniform(2) == 0);
  if (mul) {
    op = '*';
    switch (d) {
      case 2: da = 2; db = 1; break;
      case 3: da = 2; db = 2; break;
      case 4: da = 3; db = 3; break;
      case 5: da = 3; db = 4; break;
      default: da = 4; db = 4; break;
    }
    if (rng.uniform(2)) std::swap(da, db);
  } else {
    op = rng.uniform(2) ? '-' : '+';
    if (d == 1) {
      da = int(rng.range(1, 2));
      db = int(rng.range(1, 2));
    } else {
      da = db = d + 1;  // 2 -> 3 digits, 3 -> 4 digits
    }
  }
  int64_t a = random_digits(rng, da), b = random_digits(rng, db);
  if (op == '-' && a < b) std::swap(a, b);
  p.op = op;
  p.numbers = {a, b};
  p.target = op == '+' ? a + b : op == '-' ? a - b : a * b;
  p.question = "What is " + num(a) + " " + op + " " + num(b) + "?";
  p.answer = num(p.target);
  return p;
}

Problem make_countdown(int d, SplitMix64& rng) {
  static const int kCount[kMaxDifficulty + 1] = {0, 2, 3, 3, 4, 4, 5};
  static const int kMax[kMaxDifficulty + 1] = {0, 10, 10, 25, 50, 100, 100};
  Problem p;
  p.kind = TaskKind::Countdown;
  p.difficulty = d;
  for (int i = 0; i < kCount[d]; ++i) p.numbers.push_back(rng.range(1, kMax[d]));
  std::sort(p.numbers.begin(), p.numbers.end());
  bool found = false;
  for (int attempt = 0; attempt < 64 && !found; ++attempt) {
    std::vector<CountdownStep> steps = random_construction(p.numbers, rng);
    auto v = step_values(p.numbers, steps);
    if (v && v->back() >= 1 && v->back() <= 999) {
      p.steps = std::move(steps);
      p.target = v->back();
      found = true;
    }
  }
  if (!found) {  // the sum: always positive and small enough
    p.steps.clear();
    int n = int(p.numbers.size());
    int acc = 0;
    for (int i = 1; i < n; ++i) {
      p.steps.push_back({acc, i, '+'});
      acc = n + i - 1;
    }
    p.target = 0;
    for (int64_t x : p.numbers) p.target += x;
  }
  p.question = "Use " + join_numbers(p.numbers) + " to make " + num(p.target) +
               ". Each number exactly once; + - * / and parentheses.";
  p.answer = countdown_expression(p.numbers, p.steps);
  return p;
}

// ---- The expression parser ----

constexpr size_t kMaxExprBytes = 256;
constexpr int kMaxDepth = 32;
constexpr int kMaxLiteralDigits = 12;

struct Parser {
  std::string_view s;
  size_t i = 0;
  int depth = 0;
  std::vector<int64_t>* used = nullptr;

  void skip() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  char peek() {
    skip();
    return i < s.size() ? s[i] : '\0';
  }
  bool expr(int64_t* out) {
    int64_t v;
    if (!term(&v)) return false;
    for (;;) {
      char c = peek();
      if (c != '+' && c != '-') break;
      ++i;
      int64_t r;
      if (!term(&r)) return false;
      if (c == '+' ? __builtin_add_overflow(v, r, &v) : __builtin_sub_overflow(v, r, &v)) return false;
    }
    *out = v;
    return true;
  }
  bool term(int64_t* out) {
    int64_t v;
    if (!factor(&v)) return false;
    for (;;) {
      char c = peek();
      if (c != '*' && c != '/') break;
      ++i;
      int64_t r;
      if (!factor(&r)) return false;
      if (c == '*') {
        if (__builtin_mul_overflow(v, r, &v)) return false;
      } else {
        if (r == 0 || (v == INT64_MIN && r == -1) || v % r != 0) return false;
        v /= r;
      }
    }
    *out = v;
    return true;
  }
  bool factor(int64_t* out) {
    char c = peek();
    if (c == '(') {
      if (++depth > kMaxDepth) return false;
      ++i;
      if (!expr(out)) return false;
      if (peek() != ')') return false;
      ++i;
      --depth;
      return true;
    }
    if (c < '0' || c > '9') return false;
    int64_t v = 0;
    int digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (++digits > kMaxLiteralDigits) return false;
      v = v * 10 + (s[i] - '0');
      ++i;
    }
    if (used) used->push_back(v);
    *out = v;
    return true;
  }
};

// ---- Worked arithmetic ----
//
// Column arithmetic as a scratchpad in which every line follows from the line above it alone: the
// line shows what is left of the operands (their last digits are the next column), the carry or
// borrow, and the result digits written so far, then computes the next column. So a small model needs
// to copy, drop a last digit and know single-digit facts; it never has to find a digit far away.
//
//   addition     4821+3795 c0: 1+5+0=6          the operands padded to equal length with zeros
//                482+379 c0 s6: 2+9+0=11         c: carry, s: digits written so far
//                ...
//                c0 s8616                        the result is the carry (if not 0) before s
//   subtraction  4821-3795 b0: 1-5-0=-4 gives 6  b: borrow; a negative column gives it + 10
//                ...
//                b0 s1026                        leading zeros of s are dropped in the result
//   a * digit    47*6 c0: 7*6+0=42 ... c2 s82, then "47 * 6 = 282"
//   a * b        a block per non-zero digit of the shorter operand (units first), each shifted by its
//                place ("47 * 3 = 141, so 47 * 30 = 1410"), then the partial products added in
//                addition blocks.

// The scratchpad being written; a slip adds `delta` to the result of computing step `slip_at`.
struct Scratch {
  std::string text;
  int64_t step = 0, slip_at = -1, delta = 0;
  bool valid = true;  // false when a slip made a column impossible (the caller tries another slip)

  int64_t column(int64_t r) { return step++ == slip_at ? r + delta : r; }
};

std::string padded(int64_t v, size_t width) {
  std::string s = num(v);
  return std::string(width - std::min(width, s.size()), '0') + s;
}

std::string s_part(const std::string& s) { return s.empty() ? "" : " s" + s; }

// One block of columns: a + b or a - b (both padded to equal length), or a * b for a digit b (which
// stays whole on every line). Returns the value the block arrives at.
int64_t column_block(Scratch& w, int64_t a, int64_t b, char op) {
  const bool mul = op == '*', sub = op == '-';
  const size_t n = mul ? num(a).size() : std::max(num(a).size(), num(b).size());
  const std::string A = padded(a, n), B = mul ? num(b) : padded(b, n);
  const std::string state = sub ? " b" : " c";  // borrow or carry
  std::string s;
  int64_t c = 0;
  for (size_t k = 0; k < n; ++k) {
    const int64_t x = A[n - 1 - k] - '0', y = mul ? b : B[n - 1 - k] - '0';
    const int64_t r = w.column(op == '+' ? x + y + c : sub ? x - y - c : x * y + c);
    if (sub ? (r < -10 || r > 9) : r < 0) w.valid = false;
    w.text += A.substr(0, n - k) + op + (mul ? B : B.substr(0, n - k)) + state + num(c) + s_part(s) + ": " + num(x) +
              op + num(y) + (mul ? '+' : op) + num(c) + "=" + num(r) + (sub && r < 0 ? " gives " + num(r + 10) : "") +
              "\n";
    s.insert(s.begin(), char('0' + (r % 10 + 10) % 10));  // a negative column: r + 10 (r >= -10 when valid)
    c = sub ? r < 0 : r / 10;
  }
  if (sub && c) w.valid = false;  // a borrow out of the top digit: the result would be negative
  w.text += state.substr(1) + num(c) + " s" + s + "\n";
  return sub ? std::stoll(s) : c * pow10i(int(n)) + std::stoll(s);
}

// The whole solution with the given slip (slip_at -1: none). Returns the result it arrives at.
int64_t write_arithmetic(const Problem& p, Scratch& w) {
  const int64_t a = p.numbers[0], b = p.numbers[1];
  w.text = num(a) + " " + p.op + " " + num(b) + "\n";
  int64_t result = 0;
  if (p.op == '+') {
    result = column_block(w, a, b, '+');
  } else if (p.op == '-') {
    result = column_block(w, a, b, '-');
  } else {
    // Decompose the operand with fewer digits (b on a tie) into its non-zero digits, units first.
    const bool swap = num(a).size() < num(b).size();
    const int64_t base = swap ? b : a, split = swap ? a : b;
    std::vector<int64_t> partial;
    const std::string S = num(split);
    for (size_t k = 0; k < S.size(); ++k) {
      const int64_t d = S[S.size() - 1 - k] - '0';
      if (d == 0) continue;
      const int64_t v = column_block(w, base, d, '*'), place = pow10i(int(k));
      w.text += num(base) + " * " + num(d) + " = " + num(v);
      if (place > 1) w.text += ", so " + num(base) + " * " + num(d * place) + " = " + num(v * place);
      w.text += "\n";
      partial.push_back(v * place);
    }
    if (partial.empty()) partial.push_back(0);  // split is 0 (generated operands are >= 1)
    result = partial[0];
    for (size_t k = 1; k < partial.size(); ++k) result = column_block(w, result, partial[k], '+');
  }
  w.text += "So " + num(a) + " " + p.op + " " + num(b) + " = " + num(result) + ".";
  return result;
}

Worked work_arithmetic(const Problem& p, std::optional<uint64_t> slip_seed) {
  Scratch clean;
  const int64_t result = write_arithmetic(p, clean);
  if (!slip_seed) return {clean.text, num(result)};
  // One column's result off by 1..3 either way; later columns carry on correctly from it. Retry the
  // draws that make a column impossible (a negative sum, a borrow out of the top digit).
  auto slipped = [&](int64_t at, int64_t delta) -> std::optional<Worked> {
    Scratch w;
    w.slip_at = at;
    w.delta = delta;
    const int64_t v = write_arithmetic(p, w);
    if (w.valid && v != result) return Worked{w.text, num(v)};
    return std::nullopt;
  };
  SplitMix64 srng(*slip_seed);
  for (int attempt = 0; attempt < 256; ++attempt) {
    const int64_t at = int64_t(srng.uniform(uint64_t(clean.step)));
    const int64_t delta = srng.range(1, 3) * (srng.uniform(2) ? 1 : -1);
    if (auto w = slipped(at, delta)) return *w;
  }
  for (int64_t at = 0; at < clean.step; ++at)  // every valid slip, in order (rarely reached)
    for (int64_t delta : {1, -1, 2, -2, 3, -3})
      if (auto w = slipped(at, delta)) return *w;
  throw Error("tasks: no arithmetic slip possible for \"" + p.question + "\"");
}

// ---- Worked Countdown ----

void write_steps(std::string& text, const std::vector<int64_t>& numbers, const std::vector<CountdownStep>& steps,
                 const std::vector<int64_t>& values, int64_t claim_last) {
  for (size_t k = 0; k < steps.size(); ++k) {
    const CountdownStep& s = steps[k];
    int64_t r = k + 1 == steps.size() ? claim_last : values[numbers.size() + k];
    text += (k == 0 ? "Try " : "") + num(values[s.lhs]) + " " + s.op + " " + num(values[s.rhs]) + " = " +
            num(r) + "\n";
  }
}

// The reference construction with one operator changed so that it misses the target while every step
// stays a valid integer operation; nullopt only when p has no steps.
std::optional<std::vector<CountdownStep>> mutate_construction(const Problem& p, SplitMix64& rng) {
  if (p.steps.empty()) return std::nullopt;
  static const char kOps[3] = {'+', '-', '*'};
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::vector<CountdownStep> s = p.steps;
    size_t k = rng.uniform(s.size());
    char op = kOps[rng.uniform(3)];
    if (op == s[k].op) continue;
    s[k].op = op;
    auto v = step_values(p.numbers, s);
    if (v && v->back() != p.target) return s;
  }
  // The last step: of the two other operators among + - *, at least one misses (x + y != x - y, y != 0).
  auto v = step_values(p.numbers, p.steps);
  for (char op : kOps) {
    if (op == p.steps.back().op) continue;
    std::vector<CountdownStep> s = p.steps;
    s.back().op = op;
    auto w = step_values(p.numbers, s);
    if (w && w->back() != p.target) return s;
  }
  (void)v;
  return std::nullopt;
}

Worked work_countdown(const Problem& p, uint64_t seed, std::optional<uint64_t> slip_seed) {
  std::string text;
  if (p.steps.empty()) return {"", p.answer};
  SplitMix64 rng(mix64(seed, 0xa77e));
  if (p.difficulty >= 3) {
    std::vector<CountdownStep> attempt = random_construction(p.numbers, rng);
    auto v = step_values(p.numbers, attempt);
    if (v && v->back() != p.target) {
      write_steps(text, p.numbers, attempt, *v, v->back());
      text += num(v->back()) + " is not " + num(p.target) + ".\n";
    }
  }
  std::vector<CountdownStep> steps = p.steps;
  if (slip_seed) {
    SplitMix64 srng(*slip_seed);
    if (auto m = mutate_construction(p, srng)) steps = *m;
  }
  auto v = step_values(p.numbers, steps);
  SEEK_ASSERT(v.has_value());
  write_steps(text, p.numbers, steps, *v, p.target);
  std::string expr = countdown_expression(p.numbers, steps);
  text += "Found: " + expr + " = " + num(p.target);
  return {text, expr};
}

// Whether `steps` form one expression tree over all the numbers: numbers.size() - 1 steps, each over
// two references to numbers or earlier steps, every reference but the last step used exactly once.
bool valid_steps(const std::vector<int64_t>& numbers, const std::vector<CountdownStep>& steps) {
  const size_t n = numbers.size();
  if (n == 0 || n > 64 || steps.size() + 1 != n) return false;
  std::vector<int> uses(n + steps.size(), 0);
  for (size_t k = 0; k < steps.size(); ++k) {
    const CountdownStep& s = steps[k];
    int limit = int(n + k);  // a step may use the numbers and earlier steps
    if (s.lhs < 0 || s.rhs < 0 || s.lhs >= limit || s.rhs >= limit || s.lhs == s.rhs) return false;
    if (s.op != '+' && s.op != '-' && s.op != '*' && s.op != '/') return false;
    if (++uses[s.lhs] > 1 || ++uses[s.rhs] > 1) return false;
  }
  return true;  // n + steps.size() - 1 references, each used at most once, by n - 1 steps using two: all once
}

// A problem made by hand must have what the worked solutions read.
void check_workable(const Problem& p) {
  if (p.kind == TaskKind::Arithmetic) {
    if (p.numbers.size() != 2 || (p.op != '+' && p.op != '-' && p.op != '*') || p.numbers[0] < 0 ||
        p.numbers[1] < 0 || p.numbers[0] > 999999999 || p.numbers[1] > 999999999)
      throw Error("tasks: an arithmetic problem needs numbers = {a, b} in 0..999999999 and op + - or *");
    return;
  }
  bool ok = p.numbers.size() >= 2 && valid_steps(p.numbers, p.steps);
  if (ok) {
    auto v = step_values(p.numbers, p.steps);
    ok = v && v->back() == p.target;
  }
  if (!ok)
    throw Error("tasks: a Countdown problem needs steps (numbers.size() - 1 valid operations over the "
                "numbers and earlier steps) that reach the target");
}

}  // namespace

// ---- Public ----


const char* task_kind_name(TaskKind kind) { return kind == TaskKind::Arithmetic ? "arithmetic" : "countdown"; }
const char* split_name(Split split) { return split == Split::Train ? "train" : "heldout"; }

Problem make_problem(TaskKind kind, int difficulty, uint64_t seed, uint64_t index) {
  check_difficulty(difficulty);
  SplitMix64 rng(mix64(mix64(seed, index), uint64_t(kind == TaskKind::Countdown) * 16 + uint64_t(difficulty)));
  Problem p = kind == TaskKind::Arithmetic ? make_arithmetic(difficulty, rng) : make_countdown(difficulty, rng);
  p.id = hash_bytes(canonical_key(p));
  return p;
}

Split split_of(const Problem& p, double heldout_fraction) {
  if (!(heldout_fraction >= 0.0 && heldout_fraction <= 1.0))
    throw Error(strfmt("tasks: heldout_fraction = %g is outside [0, 1]", heldout_fraction));
  double u = double(hash_bytes(canonical_key(p)) >> 11) * 0x1.0p-53;
  return u < heldout_fraction ? Split::HeldOut : Split::Train;
}

Problem make_split_problem(TaskKind kind, int difficulty, Split split, uint64_t seed, uint64_t index,
                           double heldout_fraction) {
  check_difficulty(difficulty);
  if (!(heldout_fraction >= 0.0 && heldout_fraction <= 1.0))
    throw Error(strfmt("tasks: heldout_fraction = %g is outside [0, 1]", heldout_fraction));
  if ((split == Split::HeldOut && heldout_fraction == 0.0) || (split == Split::Train && heldout_fraction == 1.0))
    throw Error(strfmt("tasks: heldout_fraction = %g leaves the %s split empty", heldout_fraction,
                       split_name(split)));
  for (uint64_t t = 0; t < 100000; ++t) {
    Problem p = make_problem(kind, difficulty, t == 0 ? seed : mix64(seed, t), index);
    if (split_of(p, heldout_fraction) == split) return p;
  }
  throw Error(strfmt("tasks: no %s %s problem of difficulty %d found in 100000 tries (heldout_fraction = %g)",
                     split_name(split), task_kind_name(kind), difficulty, heldout_fraction));
}

std::optional<int64_t> parse_strict_int(std::string_view t) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  size_t b = 0, e = t.size();
  while (b < e && ws(t[b])) ++b;
  while (e > b && ws(t[e - 1])) --e;
  bool neg = false;
  if (b < e && (t[b] == '+' || t[b] == '-')) neg = t[b++] == '-';
  if (b == e || e - b > 18) return std::nullopt;
  int64_t v = 0;
  for (size_t i = b; i < e; ++i) {
    if (t[i] < '0' || t[i] > '9') return std::nullopt;
    v = v * 10 + (t[i] - '0');
  }
  return neg ? -v : v;
}

std::optional<int64_t> eval_countdown(std::string_view expr, std::vector<int64_t>* used) {
  if (used) used->clear();
  if (expr.size() > kMaxExprBytes) return std::nullopt;
  Parser ps;
  ps.s = expr;
  ps.used = used;
  int64_t v = 0;
  if (!ps.expr(&v)) return std::nullopt;
  if (ps.peek() != '\0' || ps.i != expr.size()) return std::nullopt;  // trailing input (a NUL byte too)
  return v;
}

bool check_answer(const Problem& p, std::string_view answer_text) {
  if (p.kind == TaskKind::Arithmetic) {
    auto v = parse_strict_int(answer_text);
    return v && *v == p.target;
  }
  std::vector<int64_t> used;
  auto v = eval_countdown(answer_text, &used);
  if (!v || *v != p.target) return false;
  std::vector<int64_t> given = p.numbers;
  std::sort(given.begin(), given.end());
  std::sort(used.begin(), used.end());
  return used == given;
}

std::optional<std::string_view> answer_span(std::string_view text) {
  size_t b = text.find("<answer>");
  if (b == std::string_view::npos) return std::nullopt;
  b += 8;
  size_t e = text.find("</answer>", b);
  if (e == std::string_view::npos) return std::nullopt;
  return text.substr(b, e - b);
}

std::string countdown_expression(const std::vector<int64_t>& numbers, const std::vector<CountdownStep>& steps) {
  if (!valid_steps(numbers, steps))
    throw Error("tasks: countdown_expression: the steps are not one expression tree over all the numbers");
  if (steps.empty()) return num(numbers[0]);
  int p = 0;
  return expr_of(numbers, steps, int(numbers.size() + steps.size() - 1), &p);
}

Worked work_problem(const Problem& p, uint64_t seed, std::optional<uint64_t> slip_seed) {
  check_workable(p);
  Worked w = p.kind == TaskKind::Arithmetic ? work_arithmetic(p, slip_seed) : work_countdown(p, seed, slip_seed);
  if (slip_seed) SEEK_ASSERT_MSG(!check_answer(p, w.answer), "a slipped solution must be wrong");
  return w;
}

std::string worked_solution(const Problem& p) { return work_problem(p, p.id).text; }

std::string plausible_wrong_answer(const Problem& p, uint64_t seed) {
  check_workable(p);
  SplitMix64 rng(mix64(seed, 0x3a0e));
  if (p.kind == TaskKind::Arithmetic) {
    int64_t v = p.target;
    if (v >= -9 && v <= 9) {
      int64_t w = v + (rng.uniform(2) && v - 3 >= 0 ? -rng.range(1, 3) : rng.range(1, 3));
      return num(w);
    }
    bool neg = v < 0;
    std::string s = num(neg ? -v : v);
    const std::string orig = s;
    int changes = rng.real() < 0.6 ? 1 : 2;
    for (int c = 0; c < changes || s == orig; ++c) {
      size_t k = rng.uniform(s.size());
      char old = s[k];
      char lo = k == 0 ? '1' : '0';
      char d;
      do d = char(lo + rng.uniform(uint64_t('9' - lo + 1)));
      while (d == old);
      s[k] = d;
    }
    return (neg ? "-" : "") + s;
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::vector<CountdownStep> s = random_construction(p.numbers, rng);
    auto v = step_values(p.numbers, s);
    if (v && v->back() != p.target) return countdown_expression(p.numbers, s);
  }
  if (auto m = mutate_construction(p, rng)) return countdown_expression(p.numbers, *m);
  return p.answer + " + 1";  // unreachable for generated problems; still wrong (a literal not given)
}

}  // namespace seek
