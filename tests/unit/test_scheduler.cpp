// Serving engine: continuous batching gives each request exactly what it gets alone (with chunked
// prefill, a small batch and a queue), requests join a running batch and leave it, cancellation frees a
// slot, refusals (queue full, too large), and prefix-cache hits that keep greedy output unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "engine/generator.h"
#include "engine/scheduler.h"
#include "nn/moe.h"
#include "ranks.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;
using namespace std::chrono_literals;

namespace {

std::vector<int32_t> prompt(int64_t n, int32_t salt, int64_t V) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(int32_t((i * 31 + salt * 7 + 3) % V));
  return p;
}

struct Result {
  std::vector<int32_t> tokens;
  StreamEvent final;
};

Result drain(SequenceStream& s) {
  Result r;
  std::vector<StreamEvent> evs;
  while (s.next(evs, 50ms)) {
    for (StreamEvent& e : evs) {
      if (e.token >= 0) r.tokens.push_back(e.token);
      if (e.final) r.final = e;
    }
    evs.clear();
  }
  return r;
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Model> model;
  int64_t V = 0;
  Fixture() {
    write_random_checkpoint(dir.path.string(), test::tiny_config("deepseek_v3"), {DType::F32, 31, 1});
    model = Model::load(dir.path.string());
    V = model->config().vocab_size;
  }
};

std::vector<GenerationRequest> mixed_requests(int64_t V) {
  std::vector<GenerationRequest> reqs(5);
  const int64_t lens[5] = {3, 23, 9, 40, 1};
  for (int i = 0; i < 5; ++i) {
    reqs[size_t(i)].prompt = prompt(lens[i], i + 1, V);
    reqs[size_t(i)].stop.max_new_tokens = 4 + 3 * i;
    reqs[size_t(i)].sampling.temperature = i % 2 ? 0.9f : 0.0f;
    reqs[size_t(i)].sampling.seed = uint64_t(100 + i);
    reqs[size_t(i)].sampling.top_k = i == 3 ? 10 : 0;
  }
  return reqs;
}

}  // namespace

TEST(Scheduler, ContinuousBatchingEqualsEachRequestAlone) {
  Fixture f;
  std::vector<GenerationRequest> reqs = mixed_requests(f.V);
  Generator g(*f.model, nullptr);
  std::vector<GenerationOutput> alone;
  for (const GenerationRequest& r : reqs) {
    GenerationRequest gr{r.prompt, r.sampling, r.stop, {}, -1};
    alone.push_back(g.run({gr})[0]);
  }
  // 2 running at once, 7 prompt tokens per step: queueing, joining mid-flight and chunked prefill.
  SchedulerOptions opt;
  opt.max_seqs = 2;
  opt.prefill_chunk = 7;
  Scheduler engine(*f.model, nullptr, nullptr, opt);
  std::vector<std::shared_ptr<SequenceStream>> streams;
  for (const GenerationRequest& r : reqs) {
    Scheduler::Submitted s = engine.submit(r);
    ASSERT_TRUE(s.stream);
    streams.push_back(s.stream);
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    Result r = drain(*streams[i]);
    EXPECT_EQ(r.tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(r.final.finish_reason, alone[i].finish_reason) << "request " << i;
    EXPECT_EQ(r.final.prompt_tokens, int64_t(reqs[i].prompt.size()));
    EXPECT_EQ(r.final.completion_tokens, int64_t(alone[i].tokens.size()));
  }
  // Gauges are updated at the end of the step that finished the last sequence.
  for (int i = 0; i < 200 && engine.stats().running > 0; ++i) std::this_thread::sleep_for(5ms);
  const SchedulerStats st = engine.stats();
  EXPECT_EQ(st.finished, 5);
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.kv_bytes, 0u);
  EXPECT_GT(st.step_seqs, st.steps) << "some steps must have batched several sequences";
}

TEST(Scheduler, ARequestJoinsARunningBatchAndLeavesFirst) {
  Fixture f;
  SchedulerOptions opt;
  opt.step_delay_ms = 2;
  Scheduler engine(*f.model, nullptr, nullptr, opt);
  GenerationRequest a;
  a.prompt = prompt(5, 1, f.V);
  a.sampling.temperature = 0;
  a.stop.max_new_tokens = 120;
  GenerationRequest b = a;
  b.prompt = prompt(12, 2, f.V);
  b.stop.max_new_tokens = 5;
  auto sa = engine.submit(a).stream;
  std::vector<StreamEvent> evs;
  while (evs.empty()) sa->next(evs, 100ms);  // a is running
  auto sb = engine.submit(b).stream;
  Result rb = drain(*sb);
  EXPECT_EQ(rb.final.finish_reason, "length");
  EXPECT_EQ(rb.tokens.size(), 5u);
  size_t a_tokens = evs.size();
  evs.clear();
  sa->next(evs, 0ms);
  for (const StreamEvent& e : evs) EXPECT_FALSE(e.final) << "b finished while a still runs";
  a_tokens += evs.size();
  EXPECT_LT(a_tokens, 60u);
  Result ra = drain(*sa);
  EXPECT_EQ(a_tokens + ra.tokens.size(), 120u);
}

TEST(Scheduler, CancellationFreesTheSlotAtOnce) {
  Fixture f;
  SchedulerOptions opt;
  opt.max_seqs = 1;
  opt.step_delay_ms = 2;
  Scheduler engine(*f.model, nullptr, nullptr, opt);
  GenerationRequest a;
  a.prompt = prompt(6, 3, f.V);
  a.stop.max_new_tokens = 200;
  GenerationRequest b = a;
  b.stop.max_new_tokens = 3;
  auto sa = engine.submit(a).stream;
  auto sb = engine.submit(b).stream;
  std::vector<StreamEvent> evs;
  while (evs.empty()) sa->next(evs, 100ms);
  EXPECT_EQ(engine.stats().queued, 1);
  sa->cancel();
  Result ra = drain(*sa), rb = drain(*sb);
  EXPECT_EQ(ra.final.finish_reason, "cancelled");
  EXPECT_LT(ra.final.completion_tokens, 100);
  EXPECT_EQ(rb.final.finish_reason, "length");
  EXPECT_EQ(rb.tokens.size(), 3u);
  const SchedulerStats st = engine.stats();
  EXPECT_EQ(st.cancelled, 1);
  EXPECT_EQ(st.finished, 1);
  // A request cancelled while it waits never runs.
  auto sc = engine.submit(a).stream;
  auto sd = engine.submit(b).stream;
  sd->cancel();
  sc->cancel();
  EXPECT_EQ(drain(*sd).final.finish_reason, "cancelled");
  EXPECT_EQ(drain(*sc).final.finish_reason, "cancelled");
}

// logprobs: each generated token's event carries the log-softmax of the model's raw logits at that
// position (before the request's bias, penalties and temperature) for the token and for the k most
// likely ids, best first. Checked against the same model's logits from one forward pass over the prompt
// and the tokens it generated, normalized in double here. The bias pushes the sampler towards an id the
// raw logits rank low, so logprobs taken after the bias would fail.
TEST(Scheduler, LogprobsAreTheRawLogitsLogSoftmax) {
  Fixture f;
  Scheduler engine(*f.model, nullptr, nullptr, SchedulerOptions{});
  GenerationRequest r;
  r.prompt = prompt(9, 4, f.V);
  r.sampling.temperature = 1.3f;
  r.sampling.seed = 11;
  r.sampling.presence_penalty = 1.0f;
  r.sampling.logit_bias = {{5, 6.0f}};
  r.stop.max_new_tokens = 8;
  r.top_logprobs = 4;
  auto stream = engine.submit(r).stream;
  std::vector<StreamEvent> evs, got;
  while (stream->next(evs, 50ms)) {
    for (StreamEvent& e : evs)
      if (e.token >= 0) got.push_back(e);
    evs.clear();
  }
  ASSERT_EQ(got.size(), 8u);

  std::vector<int32_t> ids = r.prompt;
  for (const StreamEvent& e : got) ids.push_back(e.token);
  KVCache cache = f.model->new_cache(int64_t(ids.size()));
  std::vector<float> logits(ids.size() * size_t(f.V));
  f.model->forward(cache, ids.data(), int64_t(ids.size()), logits.data());
  int below_top = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float* z = logits.data() + (r.prompt.size() - 1 + i) * size_t(f.V);
    double mx = z[0], sum = 0;
    for (int64_t v = 0; v < f.V; ++v) mx = std::max(mx, double(z[v]));
    for (int64_t v = 0; v < f.V; ++v) sum += std::exp(double(z[v]) - mx);
    auto logp = [&](int32_t v) { return double(z[v]) - mx - std::log(sum); };
    std::vector<int32_t> order(size_t(f.V));
    for (int32_t v = 0; v < int32_t(f.V); ++v) order[size_t(v)] = v;
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
    const StreamEvent& e = got[i];
    EXPECT_NEAR(e.logprob, logp(e.token), 1e-3) << "token " << i;
    ASSERT_EQ(e.top.size(), 4u);
    for (size_t j = 0; j < 4; ++j) {
      EXPECT_EQ(e.top[j].first, order[j]) << "token " << i << ", rank " << j;
      EXPECT_NEAR(e.top[j].second, logp(order[j]), 1e-3) << "token " << i << ", rank " << j;
    }
    below_top += e.logprob < e.top[0].second - 1.0f;
  }
  EXPECT_GT(below_top, 0) << "every sampled token was near the raw top: the test cannot tell raw from biased logits";
}

TEST(Scheduler, RefusesWhenTheQueueIsFullOrTheRequestTooLarge) {
  Fixture f;
  SchedulerOptions opt;
  opt.max_seqs = 1;
  opt.max_queue = 1;
  opt.step_delay_ms = 5;
  opt.max_kv_bytes = 0;
  {
    Scheduler small(*f.model, nullptr, nullptr, opt);
    GenerationRequest r;
    r.prompt = prompt(4, 1, f.V);
    r.stop.max_new_tokens = 10;
    Scheduler::Submitted s = small.submit(r);
    EXPECT_FALSE(s.stream);
    EXPECT_EQ(s.refusal, Scheduler::Refusal::TooLarge);
  }
  opt.max_kv_bytes = size_t(1) << 30;
  Scheduler engine(*f.model, nullptr, nullptr, opt);
  GenerationRequest r;
  r.prompt = prompt(4, 1, f.V);
  r.stop.max_new_tokens = 100;
  auto s1 = engine.submit(r).stream;
  std::vector<StreamEvent> evs;
  while (evs.empty()) s1->next(evs, 100ms);  // running: the queue is empty again
  auto s2 = engine.submit(r);
  EXPECT_TRUE(s2.stream);
  auto s3 = engine.submit(r);
  EXPECT_FALSE(s3.stream);
  EXPECT_EQ(s3.refusal, Scheduler::Refusal::QueueFull);
  s1->cancel();
  s2.stream->cancel();
  // Bad requests are errors, not refusals.
  GenerationRequest bad;
  EXPECT_THROW(engine.submit(bad), Error);  // empty prompt
  bad.prompt = prompt(10, 1, f.V);
  bad.stop.max_new_tokens = f.model->config().max_position_embeddings;
  EXPECT_THROW(engine.submit(bad), Error);  // over the context
  bad.stop.max_new_tokens = 4;
  bad.prompt[2] = int32_t(f.V);
  EXPECT_THROW(engine.submit(bad), Error);  // token id outside the vocabulary
  bad.prompt[2] = 1;
  bad.sampling.top_p = 0;
  EXPECT_THROW(engine.submit(bad), Error);
}

TEST(Scheduler, PrefixCacheHitsKeepGreedyOutput) {
  Fixture f;
  PrefixCacheOptions po;
  po.salt = 1;
  PrefixCache pc(f.model->config(), MlaForm::Absorbed, po);
  Scheduler engine(*f.model, nullptr, &pc, SchedulerOptions{});
  GenerationRequest r;
  r.prompt = prompt(50, 5, f.V);
  r.sampling.temperature = 0;
  r.stop.max_new_tokens = 12;
  Result first = drain(*engine.submit(r).stream);
  Result second = drain(*engine.submit(r).stream);
  EXPECT_EQ(first.final.cached_tokens, 0);
  EXPECT_EQ(second.final.cached_tokens, 48);
  EXPECT_EQ(second.tokens, first.tokens);
  // The next turn: prompt + answer + more. Its prefix up to the answer's rows hits.
  GenerationRequest next = r;
  next.prompt.insert(next.prompt.end(), first.tokens.begin(), first.tokens.end());
  for (int32_t t : prompt(9, 8, f.V)) next.prompt.push_back(t);
  Result third = drain(*engine.submit(next).stream);
  EXPECT_EQ(third.final.cached_tokens, (50 + 12 - 1) / 16 * 16);
  const SchedulerStats st = engine.stats();
  EXPECT_EQ(st.cached_tokens, 48 + third.final.cached_tokens);
  EXPECT_EQ(st.prefilled_tokens, st.prompt_tokens - st.cached_tokens);
}

TEST(Scheduler, ChunkedPrefillKeepsRunningStreamsFlowing) {
  Fixture f;
  SchedulerOptions opt;
  opt.prefill_chunk = 8;
  Scheduler engine(*f.model, nullptr, nullptr, opt);
  GenerationRequest a;
  a.prompt = prompt(4, 1, f.V);
  a.sampling.temperature = 0;
  a.stop.max_new_tokens = 100;
  GenerationRequest b = a;
  b.prompt = prompt(120, 2, f.V);  // 15 chunks of 8
  b.stop.max_new_tokens = 2;
  auto sa = engine.submit(a).stream;
  std::vector<StreamEvent> ea, eb;
  while (ea.empty()) sa->next(ea, 100ms);
  auto sb = engine.submit(b).stream;
  // Collect a's tokens until b's first token arrives: a must have kept going meanwhile.
  while (eb.empty()) {
    sb->next(eb, 1ms);
    sa->next(ea, 0ms);
  }
  sa->next(ea, 0ms);
  EXPECT_GE(ea.size(), 14u) << "a gets a token in every step of b's 15-step prefill";
  drain(*sa);
  drain(*sb);
}

// Speculative decoding in the server's scheduler: greedy requests with MTP drafts, in a batch with
// chunked prefill and with a prompt restored from the prefix cache (the module's cache then starts
// after the restored positions), give the tokens they give without drafts; the drafts are counted; and
// with draft_max_seqs below the batch the scheduler drafts nothing.
TEST(Scheduler, MtpDraftsKeepGreedyOutputInTheBatchAndAfterACacheHit) {
  Fixture f;
  std::vector<GenerationRequest> reqs = mixed_requests(f.V);
  for (auto& r : reqs) {
    r.sampling.temperature = 0;
    r.stop.max_new_tokens += 6;
  }
  Generator g(*f.model, nullptr);
  std::vector<std::vector<int32_t>> want;
  for (const GenerationRequest& r : reqs) want.push_back(g.run({r})[0].tokens);
  for (int64_t max_seqs_drafting : {int64_t(8), int64_t(0)}) {
    PrefixCacheOptions po;
    po.salt = 2;
    PrefixCache pc(f.model->config(), MlaForm::Absorbed, po);
    SchedulerOptions opt;
    opt.max_seqs = 3;
    opt.prefill_chunk = 7;
    opt.draft_max_seqs = max_seqs_drafting;
    Scheduler engine(*f.model, nullptr, &pc, opt);
    std::vector<std::shared_ptr<SequenceStream>> streams;
    for (GenerationRequest r : reqs) {
      r.speculative.draft_tokens = 2;
      streams.push_back(engine.submit(r).stream);
    }
    for (size_t i = 0; i < reqs.size(); ++i)
      EXPECT_EQ(drain(*streams[i]).tokens, want[i]) << "request " << i << ", draft_max_seqs " << max_seqs_drafting;
    // Request 3's prompt (40 tokens) again: 32 positions come from the prefix cache.
    GenerationRequest again = reqs[3];
    again.speculative.draft_tokens = 2;
    Result hit = drain(*engine.submit(again).stream);
    EXPECT_EQ(hit.final.cached_tokens, 32);
    EXPECT_EQ(hit.tokens, want[3]);
    for (int i = 0; i < 200 && engine.stats().running > 0; ++i) std::this_thread::sleep_for(5ms);
    const SchedulerStats st = engine.stats();
    int64_t total = 0;
    for (const auto& w : want) total += int64_t(w.size());
    EXPECT_EQ(st.drafts.tokens, total + int64_t(want[3].size()));
    if (max_seqs_drafting == 0) {
      EXPECT_EQ(st.drafts.total_drafted(), 0);
    } else {
      EXPECT_GT(st.drafts.total_drafted(), 0);
    }
  }
}

// Expert parallelism on in-process ranks: rank 0 schedules with a prefix cache, the others follow with
// their share of the experts (engine/scheduler.h). Every request gets what one process gives it alone:
// queueing and chunked prefill, a prefix-cache hit (whose rows rank 0 sends), and a cancelled stream.
TEST(Scheduler, ExpertParallelFollowersRepeatRankZeroSteps) {
  Fixture f;
  std::vector<GenerationRequest> reqs = mixed_requests(f.V);
  reqs.push_back(reqs[3]);  // the same 40-token prompt again: a prefix-cache hit of 32 tokens
  Generator g(*f.model, nullptr);
  std::vector<GenerationOutput> alone;
  for (const GenerationRequest& r : reqs) alone.push_back(g.run({r})[0]);
  for (int n : {2, 3}) {
    std::vector<Result> got(reqs.size());
    Result cancelled;
    const std::vector<std::string> errors = test::on_ranks(n, [&](Communicator& comm) {
      std::unique_ptr<Model> model = Model::load(f.dir.path.string());
      ExpertParallel ep(comm, model->config().n_routed_experts);
      model->set_experts(&ep);
      SchedulerOptions opt;
      opt.max_seqs = 2;
      opt.prefill_chunk = 7;
      opt.group = &comm;
      if (comm.rank() != 0) {
        Scheduler(*model, nullptr, nullptr, opt).follow();
        return;
      }
      PrefixCacheOptions po;
      po.salt = 1;
      PrefixCache pc(model->config(), MlaForm::Absorbed, po);
      Scheduler engine(*model, nullptr, &pc, opt);
      GenerationRequest endless = reqs[0];
      endless.stop.max_new_tokens = 200;
      std::shared_ptr<SequenceStream> leaving = engine.submit(endless).stream;
      std::vector<StreamEvent> first;
      while (first.empty()) leaving->next(first, 50ms);
      leaving->cancel();
      cancelled = drain(*leaving);
      for (size_t i = 0; i + 1 < reqs.size(); ++i) got[i] = drain(*engine.submit(reqs[i]).stream);
      got.back() = drain(*engine.submit(reqs.back()).stream);
    });
    for (int r = 0; r < n; ++r) EXPECT_EQ(errors[size_t(r)], "") << n << " ranks, rank " << r;
    EXPECT_EQ(cancelled.final.finish_reason, "cancelled");
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(got[i].tokens, alone[i].tokens) << n << " ranks, request " << i;
      EXPECT_EQ(got[i].final.finish_reason, alone[i].finish_reason) << n << " ranks, request " << i;
    }
    EXPECT_EQ(got.back().final.cached_tokens, 32) << n << " ranks";
  }
}
