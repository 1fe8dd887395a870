// reward.cpp — format and accuracy rewards; the exact rules are in reward.h.
#include "rl/reward.h"

#include <cstddef>

namespace seek::rl {

namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kAnswerOpen = "<answer>", kAnswerClose = "</answer>";

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool all_ws(std::string_view s) {
  for (char c : s)
    if (!is_ws(c)) return false;
  return true;
}

// Occurrences of tag in s (a tag has one '<', at its start, so occurrences never overlap).
size_t count(std::string_view s, std::string_view tag) {
  size_t n = 0;
  for (size_t p = s.find(tag); p != std::string_view::npos; p = s.find(tag, p + tag.size())) ++n;
  return n;
}

}  // namespace

std::optional<CompletionParts> parse_completion(std::string_view c, bool think_in_prompt) {
  if (count(c, kThinkOpen) != (think_in_prompt ? 0u : 1u) || count(c, kThinkClose) != 1 ||
      count(c, kAnswerOpen) != 1 || count(c, kAnswerClose) != 1)
    return std::nullopt;
  size_t r0 = 0;  // start of the reasoning
  if (!think_in_prompt) {
    const size_t open = c.find(kThinkOpen);
    if (!all_ws(c.substr(0, open))) return std::nullopt;
    r0 = open + kThinkOpen.size();
  }
  const size_t think_close = c.find(kThinkClose);
  const size_t answer_open = c.find(kAnswerOpen);
  const size_t answer_close = c.find(kAnswerClose);
  // Order: <think> < </think> < <answer> < </answer>, each tag ending before the next begins.
  if (think_close < r0 || answer_open < think_close + kThinkClose.size() ||
      answer_close < answer_open + kAnswerOpen.size())
    return std::nullopt;
  const size_t a0 = answer_open + kAnswerOpen.size();
  CompletionParts parts{c.substr(r0, think_close - r0), c.substr(a0, answer_close - a0)};
  const size_t between = think_close + kThinkClose.size();
  if (!all_ws(c.substr(between, answer_open - between))) return std::nullopt;
  if (!all_ws(c.substr(answer_close + kAnswerClose.size()))) return std::nullopt;
  if (all_ws(parts.answer)) return std::nullopt;
  return parts;
}

RewardResult score(const Problem& problem, std::string_view completion, const RewardWeights& weights,
                   bool think_in_prompt) {
  RewardResult r;
  r.formatted = parse_completion(completion, think_in_prompt).has_value();
  const std::optional<std::string_view> answer = answer_span(completion);
  r.correct = answer && check_answer(problem, *answer);
  r.total = (r.correct ? weights.accuracy : 0.0) + (r.formatted ? weights.format : 0.0);
  return r;
}

}  // namespace seek::rl
