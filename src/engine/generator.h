// generator.h — generation for one or many sequences at once: a batched prefill of every prompt, then
// one batched forward per step for the sequences still running (each leaves the batch when it stops),
// sampling per sequence, streamed text that never splits a UTF-8 character or leaks the start of a stop
// string.
//
// Requests with identical prompts (G samples of one question) share one prefill: the first computes
// the prompt, the others copy its cache. Give them different sampling seeds, or they sample alike.
//
// Does not: schedule requests that arrive over time (continuous batching belongs to the server's
// engine), or share caches between prompts that only begin alike.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace seek {

struct StopCriteria {
  int64_t max_new_tokens = 256;
  std::vector<int32_t> stop_ids;         // generating one of these ends the sequence (it is not output)
  std::vector<std::string> stop_strings; // the text ends before the first occurrence (may span tokens)
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  StopCriteria stop;
};

struct GenerationOutput {
  std::vector<int32_t> tokens;  // generated, stop ids excluded
  std::string text;             // their text, cut before a stop string ("" without a tokenizer)
  std::string finish_reason;    // "stop" (stop id or string), "length", or "cancelled"
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// Called with each sequence's new text as it becomes final; return false to stop that sequence.
using OnText = std::function<bool(size_t seq, std::string_view text)>;

// Text that may begin a stop string is held back until it cannot (or does) match.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds text; returns what can be shown now. `stopped()` turns true at the first stop string.
  std::string push(std::string_view text);
  std::string finish();  // the held-back tail (no stop string completed)
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

class Generator {
 public:
  // tokenizer may be null: then there is no text, and stop strings are refused.
  Generator(Model& model, const Tokenizer* tokenizer, MlaForm form = MlaForm::Absorbed);
  std::vector<GenerationOutput> run(const std::vector<GenerationRequest>& requests, const OnText& on_text = {});

 private:
  Model& model_;
  const Tokenizer* tok_;
  MlaForm form_;
};

}  // namespace seek
