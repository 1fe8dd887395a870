// generator.h — generation for one or many sequences at once, on the decoding step (engine/decode.h):
// a batched prefill of every prompt, then one batched step per token for the sequences still running
// (each leaves the batch when it stops), with streamed text.
//
// Requests with identical prompts (G samples of one question) share one prefill: the first computes
// the prompt, the others copy its cache. Give them different sampling seeds, or they sample alike.
//
// Does not: schedule requests that arrive over time (continuous batching is the server's scheduler), or
// share caches between prompts that only begin alike.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/decode.h"

namespace seek {

struct GenerationOutput {
  std::vector<int32_t> tokens;  // generated, stop ids excluded
  std::string text;             // their text, cut before a stop string ("" without a tokenizer)
  std::string finish_reason;    // "stop" (stop id or string), "length", or "cancelled"
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  DraftStats drafts;  // decode steps, and drafts verified and accepted (speculative decoding)
};

// Called with each sequence's new text as it becomes final; return false to stop that sequence.
using OnText = std::function<bool(size_t seq, std::string_view text)>;

class Generator {
 public:
  // tokenizer may be null: then there is no text, and stop strings are refused.
  Generator(Model& model, const Tokenizer* tokenizer, MlaForm form = MlaForm::Absorbed);
  // Throws Error naming the request and what is wrong with it (validate_request) before any work.
  std::vector<GenerationOutput> run(const std::vector<GenerationRequest>& requests, const OnText& on_text = {});

 private:
  Model& model_;
  const Tokenizer* tok_;
  MlaForm form_;
};

}  // namespace seek
