// rollout.cpp — see rollout.h.
#include "rl/rollout.h"

#include <algorithm>
#include <chrono>

#include "data/corpus.h"
#include "engine/generator.h"
#include "util/error.h"
#include "util/rng.h"

namespace seek::rl {

std::vector<Rollout> sample_rollouts(Model& model, const Tokenizer& tok, const std::vector<Problem>& problems,
                                     const RolloutOptions& o, RolloutStats* stats) {
  if (o.samples < 1) throw Error("rollouts: samples must be at least 1");
  if (o.batch < 1) throw Error("rollouts: batch must be at least 1");
  const int32_t eos = tok.token_id("<|eos|>");
  if (eos < 0) throw Error("rollouts: the tokenizer has no <|eos|> token (seek's chat format needs it)");
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Rollout> out;
  std::vector<GenerationRequest> reqs;
  for (size_t j = 0; j < problems.size(); ++j) {
    const std::vector<int32_t> prompt = tok.encode(prompt_text(problems[j]));
    for (int64_t i = 0; i < o.samples; ++i) {
      Rollout r;
      r.problem = int64_t(j);
      r.prompt = prompt;
      out.push_back(std::move(r));
      GenerationRequest q;
      q.prompt = prompt;
      q.sampling.temperature = o.temperature;
      q.sampling.top_p = o.top_p;
      q.sampling.seed = mix64(mix64(o.seed, uint64_t(o.first_problem + int64_t(j))), uint64_t(i));
      q.stop.max_new_tokens = o.max_new_tokens;
      q.stop.stop_ids = {eos};
      q.speculative.draft_tokens = o.draft_tokens;
      reqs.push_back(std::move(q));
    }
  }
  Generator gen(model, &tok);
  int64_t tokens = 0;
  for (size_t b0 = 0; b0 < reqs.size(); b0 += size_t(o.batch)) {
    const size_t b1 = std::min(reqs.size(), b0 + size_t(o.batch));
    std::vector<GenerationRequest> part(reqs.begin() + long(b0), reqs.begin() + long(b1));
    std::vector<GenerationOutput> res = gen.run(part);
    for (size_t i = 0; i < res.size(); ++i) {
      Rollout& r = out[b0 + i];
      r.completion = res[i].tokens;
      r.finished = res[i].finish_reason == "stop";
      if (r.finished) r.completion.push_back(eos);
      // The tags <think>, <answer> are special tokens of seek's tokenizers: the Generator's text skips
      // special tokens, the reward needs them.
      r.text = tok.decode(res[i].tokens, false);
      r.reward = score(problems[size_t(r.problem)], r.text, o.weights, false);
      tokens += int64_t(res[i].tokens.size());
    }
  }
  if (stats) {
    stats->sequences = int64_t(out.size());
    stats->tokens = tokens;
    stats->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return out;
}

}  // namespace seek::rl
