// generation_config.h — a checkpoint's recommended decoding, from Hugging Face's generation_config.json
// beside config.json (DeepSeek-R1 and its distilled students: temperature 0.6, top-p 0.95). seek's
// generate, chat and serve start from it; a flag or a request's own field wins.
//
// Read: do_sample (false: greedy, whatever the temperature), temperature, top_p, top_k,
// repetition_penalty, max_new_tokens and eos_token_id (one id or a list). Other keys are ignored.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace seek {

struct GenerationDefaults {
  SamplingParams sampling;                // seek's defaults where the file says nothing
  std::optional<int64_t> max_new_tokens;
  std::vector<int32_t> eos_ids;           // end the sequence, besides the tokenizer's end of text
  std::string source;                     // the file read; "" when the model has none
};

// The defaults of the model at `model_path` (a directory; a GGUF file or a directory without the file:
// seek's defaults). Throws Error naming the file and the key when the file is not valid JSON or a value
// has the wrong type or range.
GenerationDefaults read_generation_config(const std::string& model_path);

}  // namespace seek
