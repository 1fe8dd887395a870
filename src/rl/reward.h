// reward.h — the rule-based rewards of R1-Zero-style RL (DeepSeek-R1 §2.2.2): an accuracy reward (the
// answer checks out, tasks.h check_answer) plus a format reward (the completion puts its reasoning in
// <think>…</think> and its answer in <answer>…</answer>). No neural reward model.
//
// The completion is the text the model generated after the prompt, decoded, WITHOUT the end-of-sequence
// token. When the chat prompt already ends with the opening "<think>" (R1's template ends with
// "<think>\n"), pass think_in_prompt = true: the completion then starts inside the reasoning.
//
// Well-formed (format reward), precisely. Whitespace (ws) = space, tab, CR, LF; the four tags are the
// exact ASCII strings "<think>", "</think>", "<answer>", "</answer>" (case-sensitive).
//   think_in_prompt = false:  completion = ws* "<think>" R "</think>" ws* "<answer>" X "</answer>" ws*
//   think_in_prompt = true:   completion = R "</think>" ws* "<answer>" X "</answer>" ws*
// where R (the reasoning, may be empty) and X (the answer) contain none of the four tags — each tag
// occurs exactly once in the completion ("<think>" zero times when it is in the prompt) — and X has at
// least one non-whitespace byte. Nothing else is allowed outside the tags. Bytes are bytes: NULs and
// invalid UTF-8 inside R or X are allowed (the accuracy check rejects a garbled answer).
//
// Correct (accuracy reward): check_answer(problem, answer_span(completion)) — the text between the first
// "<answer>" and the first "</answer>" after it, judged whether or not the completion is well-formed
// (R1 scores accuracy and format separately; a duplicated answer gains nothing since only the first
// counts). For a well-formed completion this is X.
//
// Every function here is total: it never throws and never reads out of bounds, for any bytes.
#pragma once
#include <optional>
#include <string_view>

#include "data/tasks.h"

namespace seek::rl {

struct RewardWeights {
  double accuracy = 1.0;  // added when the answer is correct
  double format = 0.1;    // added when the completion is well-formed
};

struct RewardResult {
  double total = 0;       // accuracy·correct + format·formatted
  bool correct = false;   // the answer passes check_answer
  bool formatted = false; // the completion is well-formed (see above)
};

// The parts of a well-formed completion (views into it).
struct CompletionParts {
  std::string_view reasoning;  // R, between <think> (or the completion's start) and </think>
  std::string_view answer;     // X, between <answer> and </answer>
};

// The parts when the completion is well-formed, nullopt otherwise.
std::optional<CompletionParts> parse_completion(std::string_view completion, bool think_in_prompt);

RewardResult score(const Problem& problem, std::string_view completion, const RewardWeights& weights = {},
                   bool think_in_prompt = false);

}  // namespace seek::rl
