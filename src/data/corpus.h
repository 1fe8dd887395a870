// corpus.h — the synthetic pretraining corpus of seek's recipe: arithmetic and Countdown problems
// (rl/tasks.h) written as chat documents in seek's SeekTiny format, in two styles, deterministically.
//
// A document is the generation prompt for the problem followed by the completion and the EOS:
//
//   prompt_text(p) + completion + "<|eos|>"
//   prompt_text(p) = render_chat(SeekTiny, {{user, p.question}}, add_generation_prompt)
//                  = "<|bos|><|user|>{question}<|assistant|>"
//
// so the prompts GRPO and eval render later (prompt_text) are exactly the prefixes the model saw in
// pretraining. (We do not pass the completion to render_chat as an assistant message: for past turns
// the template keeps only what follows "</think>", as R1's does, which would drop the reasoning.)
//
// Styles of the completion:
//   direct  "<answer>{a}</answer>". The answer is the reference answer, except that with probability
//           direct_error_rate[difficulty] it is plausible_wrong_answer(p) (a guess that is wrong): what
//           a model that cannot compute the result in one step writes. Default rates by difficulty
//           1..6: 0, 0.1, 0.3, 0.6, 0.8, 0.9.
//   worked  "<think>{reasoning}</think><answer>{a}</answer>" with work_problem's reasoning; a share
//           sloppy_fraction of the worked documents contains one arithmetic slip, and then the answer
//           is wrong (guaranteed); the others are correct (guaranteed).
// Direct documents carry no <think> block, so they earn no format reward in GRPO.
//
// Per document i: kind (countdown with probability countdown_fraction), difficulty (uniform in
// min..max), style and errors are drawn from splitmix64 seeded by (seed, i); the problem is
// make_split_problem(kind, difficulty, split, f(seed), i, heldout_fraction). Problems repeat when a
// difficulty's problem space is small (level 1 has a few thousand); nothing here deduplicates.
//
// Not here: tokenization and the token-shard format (`seek data`), shuffling (documents are already
// in random order), evaluation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/tasks.h"

namespace seek {

struct CorpusOptions {
  uint64_t seed = 1;
  int64_t n_documents = 1000;
  double worked_fraction = 0.2;   // share of documents in the worked style
  double sloppy_fraction = 0.1;   // share of the WORKED documents that contain a slip
  int min_difficulty = 1, max_difficulty = kMaxDifficulty;
  double countdown_fraction = 0.5;
  Split split = Split::Train;
  double heldout_fraction = kDefaultHeldOutFraction;  // passed to split_of: keep it equal across runs
  std::vector<double> direct_error_rate;  // by difficulty 1..6 (6 entries); empty = the defaults above
};

struct CorpusDoc {
  std::string text;            // the whole document
  Problem problem;
  bool worked = false;         // style: worked (true) or direct
  bool sloppy = false;         // worked with a slip
  std::string answer;          // the answer the document gives
  bool correct = false;        // check_answer(problem, answer)
};

// The default direct-style error rate of a difficulty 1..6.
double default_direct_error_rate(int difficulty);

// "<|bos|><|user|>{question}<|assistant|>" (render_chat, SeekTiny, generation prompt, no think prefill).
std::string prompt_text(const Problem& p);

// Throws Error naming the field when an option is out of range (fractions outside [0, 1],
// n_documents < 0, difficulties outside 1..6 or min > max, direct_error_rate neither empty nor 6
// entries in [0, 1]).
void validate(const CorpusOptions& opt);

std::vector<CorpusDoc> make_corpus_docs(const CorpusOptions& opt);
std::vector<std::string> make_corpus(const CorpusOptions& opt);  // the texts of make_corpus_docs

// Writes the corpus as JSON lines, atomically (write_file_atomic): one object per document,
//   {"text": ..., "kind": "arithmetic"|"countdown", "difficulty": d, "style": "direct"|"worked",
//    "sloppy": bool, "correct": bool, "split": "train"|"heldout", "question": ..., "answer": ...}
// "text" is the document WITHOUT its leading "<|bos|>" and trailing "<|eos|>": `seek data` wraps every
// document as [bos] + encode(text) + [eos], so the tokens are those of the whole document (with a
// tokenizer that has <|bos|>/<|eos|> as its bos/eos and matches special tokens written in text) and
// no document gets two BOS. Documents contain newlines, hence JSON. Builds the whole file in memory.
// document_body(doc) is that text.
void write_corpus(const std::string& path, const CorpusOptions& opt);
std::string document_body(const std::string& document);  // without the leading BOS and trailing EOS

}  // namespace seek
