// rejection.h — rejection sampling of a teacher for distillation (DeepSeek-R1 §2.3.3 and §2.4): the
// teacher answers each training question K times at temperature 1; the completions that are verified
// correct AND well-formed (rl/reward.h: reward.correct && reward.formatted) become reasoning traces for
// the student's SFT (distill/sft.h).
//
// Selection, per question, in sample order: keep a rollout when it is correct and formatted, drop it when
// an identical completion (the same token ids) was already kept for that question, and stop keeping once
// max_per_question traces are kept. A kept completion always ends with EOS: a well-formed completion cut
// at max_new_tokens (only whitespace may follow "</answer>") gets the EOS appended, so the student learns
// to stop where the teacher's answer ends.
//
// Traces are saved as JSON lines (atomically, util/atomic_file.h), one object per trace:
//   {"problem": {kind, difficulty, question, answer, numbers, op, target, steps, id},
//    "prompt": [ids], "completion": [ids, EOS last], "text": "<completion text, no EOS>"}
// so a stage that was interrupted after sampling reuses them (the SFT reads only prompt and completion;
// problem and text are for people and for re-scoring).
//
// Does not: sample from several teachers, filter by length or readability (R1's language-mixing filter),
// or check that a trace's ids fit a student's vocabulary (sft.cpp does).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/rollout.h"
#include "data/tasks.h"

namespace seek::distill {

// One reasoning trace: the prompt the teacher saw and the completion it wrote.
struct Trace {
  Problem problem;
  std::vector<int32_t> prompt;      // prompt_text(problem) tokenized (BOS included, as written there)
  std::vector<int32_t> completion;  // the teacher's completion, EOS last
  std::string text;                 // the completion's text without EOS
};

// Which training questions the teacher is asked: `count` distinct problems (by Problem::id) of the
// training split, kind cycling through `kinds`, difficulty uniform in min..max (SplitMix64 by seed).
struct QuestionOptions {
  int64_t count = 64;
  std::vector<TaskKind> kinds = {TaskKind::Arithmetic, TaskKind::Countdown};
  int min_difficulty = 1, max_difficulty = 3;
  uint64_t seed = 1;
  double heldout_fraction = kDefaultHeldOutFraction;  // keep equal to the corpus's and eval's
};

struct RejectionOptions {
  int64_t samples = 8;           // K completions per question
  int64_t max_per_question = 4;  // traces kept per question at most
  float temperature = 1.0f;
  int64_t max_new_tokens = 256;
  int64_t batch = 64;            // sequences per Generator batch
  uint64_t seed = 1;
  Communicator* comm = nullptr;  // ranks that share the questions (rl/rollout.h); null: world()
};

struct RejectionStats {
  int64_t questions = 0;            // questions asked
  int64_t samples = 0;              // completions generated
  int64_t correct = 0, formatted = 0, correct_and_formatted = 0;
  int64_t duplicates = 0;           // correct+formatted but identical to one already kept
  int64_t capped = 0;               // correct+formatted, new, but over max_per_question
  int64_t kept = 0;                 // traces
  int64_t questions_with_trace = 0; // questions with at least one trace
  double share_with_trace = 0;      // questions_with_trace / questions (0 when no question)
  int64_t tokens = 0;               // completion tokens generated
  double seconds = 0;               // sampling wall time
};

// Throws Error when count < 0, kinds is empty, or the difficulties are outside 1..kMaxDifficulty or
// min > max. May return fewer than count when the difficulty range has fewer distinct training problems
// (it gives up after 20·count + 100 draws).
std::vector<Problem> training_questions(const QuestionOptions& o);

// The pure filter: rollouts (as rl::sample_rollouts returns them, problem-major, r.problem indexing
// `problems`) to traces, in the order described above. Adds its counts to *stats (questions =
// problems.size(); samples = rollouts.size()). eos is appended to kept completions that lack it.
std::vector<Trace> select_traces(const std::vector<Problem>& problems, const std::vector<rl::Rollout>& rollouts,
                                 int64_t max_per_question, int32_t eos, RejectionStats* stats = nullptr);

// Samples the teacher on the questions (rl::chunked_rollouts: chunks of about batch / samples
// questions, chunk c with the rollout seed mix64(seed, c), shared among the ranks of o.comm; one
// progress line per chunk when progress is non-null) and selects the traces. A run is reproducible for
// the same options, and the same on any number of ranks. Throws Error when the tokenizer has no
// "<|eos|>" or an option is out of range (samples, batch, max_per_question, max_new_tokens < 1).
std::vector<Trace> rejection_sample(Model& teacher, const Tokenizer& tok, const std::vector<Problem>& questions,
                                    const RejectionOptions& o, RejectionStats* stats = nullptr,
                                    std::FILE* progress = stderr);

// JSON lines, atomically. load_traces throws Error naming the file, line and field on a malformed line
// (a last line cut short, as a killed writer leaves, cannot occur: the file is written atomically).
void save_traces(const std::string& path, const std::vector<Trace>& traces);
std::vector<Trace> load_traces(const std::string& path);

}  // namespace seek::distill
