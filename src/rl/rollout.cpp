// rollout.cpp — see rollout.h.
#include "rl/rollout.h"

#include <algorithm>
#include <chrono>

#include "data/corpus.h"
#include "engine/generator.h"
#include "util/error.h"
#include "util/pack.h"
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

namespace {

void pack(Packer& o, const Rollout& r) {
  o.pod(r.problem);
  o.array(r.prompt);
  o.array(r.completion);
  o.str(r.text);
  o.pod(r.finished), o.pod(r.reward.total), o.pod(r.reward.correct), o.pod(r.reward.formatted);
}

Rollout unpack_rollout(Unpacker& in) {
  Rollout r;
  r.problem = in.pod<int64_t>();
  r.prompt = in.array<int32_t>();
  r.completion = in.array<int32_t>();
  r.text = in.str();
  r.finished = in.pod<bool>();
  r.reward.total = in.pod<double>(), r.reward.correct = in.pod<bool>(), r.reward.formatted = in.pod<bool>();
  return r;
}

}  // namespace

std::vector<Rollout> chunked_rollouts(Model& model, const Tokenizer& tok, const std::vector<Problem>& problems,
                                      const RolloutOptions& o, Communicator& comm, const ChunkProgress& after_chunk) {
  if (o.samples < 1) throw Error("rollouts: samples must be at least 1");
  const size_t per = size_t(std::max<int64_t>(1, o.batch / o.samples));  // problems a chunk
  const size_t chunks = (problems.size() + per - 1) / per, N = size_t(comm.size()), me = size_t(comm.rank());
  int64_t mine = 0, done = 0;
  for (size_t c = me; c < chunks; c += N) mine += int64_t(std::min(problems.size(), (c + 1) * per) - c * per) * o.samples;
  std::vector<std::vector<Rollout>> local(chunks);  // this rank's chunks, then every rank's
  for (size_t c = me; c < chunks; c += N) {
    const size_t p0 = c * per, p1 = std::min(problems.size(), p0 + per);
    const std::vector<Problem> part(problems.begin() + long(p0), problems.begin() + long(p1));
    RolloutOptions ro = o;
    ro.seed = mix64(o.seed, uint64_t(c));
    ro.first_problem = 0;
    local[c] = sample_rollouts(model, tok, part, ro);
    for (Rollout& r : local[c]) r.problem += int64_t(p0);
    done += int64_t(local[c].size());
    if (after_chunk) after_chunk(local[c], done, mine);
  }
  if (N > 1) {
    Packer out;
    for (size_t c = me; c < chunks; c += N) {
      out.pod(int64_t(local[c].size()));
      for (const Rollout& r : local[c]) pack(out, r);
    }
    const std::vector<std::vector<uint8_t>> parts = all_gather(comm, out.b);
    // Chunk c came from rank c mod N, in order: read each rank's chunks back into place.
    for (size_t r = 0; r < N; ++r) {
      if (r == me) continue;
      Unpacker in(parts[r], "rollouts from another rank");
      for (size_t c = r; c < chunks; c += N) {
        const int64_t n = in.pod<int64_t>();
        if (n < 0 || n > int64_t(per) * o.samples) throw Error("rollouts from another rank: a chunk has a bad count");
        for (int64_t i = 0; i < n; ++i) local[c].push_back(unpack_rollout(in));
      }
    }
  }
  std::vector<Rollout> all;
  all.reserve(problems.size() * size_t(o.samples));
  for (auto& part : local)
    for (Rollout& r : part) all.push_back(std::move(r));
  return all;
}

}  // namespace seek::rl
