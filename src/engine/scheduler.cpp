// scheduler.cpp — see scheduler.h.
#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>

#include "tensor/backend.h"
#include "util/error.h"
#include "util/pack.h"

namespace seek {

using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// What rank 0 tells its followers before a step: a fixed header, then `bytes` of payload.
struct PlanHeader {
  int64_t stop = 0;       // rank 0's scheduler stopped: so do the followers
  int64_t step = 0;       // steps told so far
  int64_t admitted = 0;   // requests that join the batch at this step
  int64_t cancelled = 0;  // running sequences that leave it
  int64_t bytes = 0;
  uint64_t digest = 0;    // of the sequences that were running before the admissions
};

void pack(Packer& o, const GenerationRequest& r) {
  o.array(r.prompt.data(), r.prompt.size());
  const SamplingParams& s = r.sampling;
  o.pod(s.temperature), o.pod(s.top_k), o.pod(s.top_p), o.pod(s.min_p), o.pod(s.repetition_penalty);
  o.pod(s.frequency_penalty), o.pod(s.presence_penalty), o.pod(s.seed);
  o.pod(int64_t(s.logit_bias.size()));
  for (const auto& [id, bias] : s.logit_bias) o.pod(id), o.pod(bias);
  o.pod(r.stop.max_new_tokens);
  o.array(r.stop.stop_ids.data(), r.stop.stop_ids.size());
  o.pod(int64_t(r.stop.stop_strings.size()));
  for (const std::string& t : r.stop.stop_strings) o.str(t);
  o.pod(r.speculative.draft_tokens), o.pod(r.speculative.min_draft_prob), o.pod(r.top_logprobs);
}

GenerationRequest unpack_request(Unpacker& in) {
  GenerationRequest r;
  r.prompt = in.array<int32_t>();
  SamplingParams& s = r.sampling;
  s.temperature = in.pod<float>(), s.top_k = in.pod<int64_t>(), s.top_p = in.pod<float>(), s.min_p = in.pod<float>();
  s.repetition_penalty = in.pod<float>(), s.frequency_penalty = in.pod<float>(), s.presence_penalty = in.pod<float>();
  s.seed = in.pod<uint64_t>();
  for (int64_t i = 0, n = in.pod<int64_t>(); i < n; ++i) {
    const int32_t id = in.pod<int32_t>();
    s.logit_bias.emplace_back(id, in.pod<float>());
  }
  r.stop.max_new_tokens = in.pod<int64_t>();
  r.stop.stop_ids = in.array<int32_t>();
  for (int64_t i = 0, n = in.pod<int64_t>(); i < n; ++i) r.stop.stop_strings.push_back(in.str());
  r.speculative.draft_tokens = in.pod<int64_t>(), r.speculative.min_draft_prob = in.pod<float>();
  r.top_logprobs = in.pod<int>();
  return r;
}

// Positions [0, n) of every layer's k and v (the rows a prefix-cache restore filled).
void pack_rows(Packer& o, const KVCache& c, int64_t n) {
  for (const LayerCache& l : c.layers)
    for (const std::vector<float>* t : {&l.k, &l.v})
      if (!t->empty()) o.b.insert(o.b.end(), reinterpret_cast<const uint8_t*>(t->data()),
                                  reinterpret_cast<const uint8_t*>(t->data() + size_t(n) * (t->size() / size_t(c.capacity))));
}

void unpack_rows(Unpacker& in, KVCache& c, int64_t n) {
  for (LayerCache& l : c.layers)
    for (std::vector<float>* t : {&l.k, &l.v})
      if (!t->empty()) in.take(t->data(), size_t(n) * (t->size() / size_t(c.capacity)) * sizeof(float));
  c.len = n;
}
}  // namespace

bool SequenceStream::next(std::vector<StreamEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  if (final_taken_) return false;
  cv_.wait_for(lk, timeout, [&] { return !events_.empty(); });
  while (!events_.empty()) {
    if (events_.front().final) final_taken_ = true;
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return true;
}

void SequenceStream::push(StreamEvent e) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

struct Scheduler::Seq {
  std::shared_ptr<SequenceStream> out;
  GenerationRequest req;        // until admission; then the sequence's
  std::unique_ptr<Sequence> seq;
  int64_t cached = 0;           // prompt tokens restored from the prefix cache
  size_t kv_bytes = 0;
  bool cancel = false;          // cancelled, as seen at the last step boundary
  bool done = false;
  Clock::time_point submitted, admitted, first_token;
  bool has_first = false;
};

Scheduler::Scheduler(Model& model, const Tokenizer* tokenizer, PrefixCache* prefix_cache, SchedulerOptions opt)
    : model_(model), tok_(tokenizer), pc_(prefix_cache), opt_(opt), decoder_(model, tokenizer) {
  if (opt_.max_seqs < 1 || opt_.max_queue < 0 || opt_.prefill_chunk < 1)
    throw Error("scheduler: max_seqs and prefill_chunk must be at least 1, max_queue at least 0");
  // The step runs on the scheduler's thread with as many OpenMP threads as its creator has: the count
  // is per thread, and under mpiexec each rank sets it to its share of the cores.
  const int threads = max_threads();
  if (!opt_.group || opt_.group->rank() == 0)
    thread_ = std::thread([this, threads] {
      set_max_threads(threads);
      loop();
    });
}

Scheduler::~Scheduler() {
  stop();
  for (auto& s : queue_) finish(*s, "cancelled", "the server is shutting down");
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t Scheduler::kv_bytes_for(const GenerationRequest& r) const {
  const Config& c = model_.config();
  const int64_t positions = int64_t(r.prompt.size()) + r.stop.max_new_tokens;
  const int64_t k = r.speculative.draft_tokens, mtp_layers = k > 0 ? c.num_nextn_predict_layers : 0;
  return size_t(KVCache::values_per_token(c, opt_.form)) *
         (size_t(c.num_hidden_layers) * size_t(positions) + size_t(mtp_layers) * size_t(positions + k)) * sizeof(float);
}

Scheduler::Submitted Scheduler::submit(GenerationRequest r) {
  validate_request(r, model_.config(), tok_);
  auto s = std::make_unique<Seq>();
  s->out = std::make_shared<SequenceStream>();
  s->kv_bytes = kv_bytes_for(r);
  s->submitted = Clock::now();
  s->req = std::move(r);
  Submitted res;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (s->kv_bytes > opt_.max_kv_bytes) {
      stats_.refused++;
      res.refusal = Refusal::TooLarge;
      res.message = strfmt("the request needs %zu bytes of KV cache (prompt + max_tokens), over the server's limit of %zu",
                           s->kv_bytes, opt_.max_kv_bytes);
      return res;
    }
    if (int64_t(queue_.size()) >= opt_.max_queue) {
      stats_.refused++;
      res.refusal = Refusal::QueueFull;
      res.message = strfmt("the server is busy: %lld requests are waiting; retry later", (long long)queue_.size());
      return res;
    }
    res.stream = s->out;
    queue_.push_back(std::move(s));
    stats_.submitted++;
    stats_.queued = int64_t(queue_.size());
  }
  cv_.notify_all();
  return res;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void Scheduler::finish(Seq& s, const std::string& reason, const std::string& error) {
  if (s.done) return;
  s.done = true;
  StreamEvent e;
  const GenerationRequest& req = s.seq ? s.seq->request() : s.req;
  if (s.seq) {
    if (!s.seq->done()) s.seq->finish(reason);
    e.text = s.seq->flush();
  }
  e.final = true;
  e.finish_reason = reason;
  e.error = error;
  e.prompt_tokens = int64_t(req.prompt.size());
  e.cached_tokens = s.cached;
  e.completion_tokens = s.seq ? int64_t(s.seq->generated.size()) : 0;
  e.total_seconds = since(s.submitted);
  e.queue_seconds = std::chrono::duration<double>(s.admitted - s.submitted).count();
  if (s.admitted < s.submitted) e.queue_seconds = e.total_seconds;
  e.first_token_seconds = s.has_first ? std::chrono::duration<double>(s.first_token - s.submitted).count() : e.total_seconds;
  // Prompt + output rows (all but the last token, whose row was never computed) for the next turn.
  if (pc_ && s.seq && reason != "error" && !s.seq->prefilling() && s.seq->cache.len > 0) {
    std::vector<int32_t> all = req.prompt;
    all.insert(all.end(), s.seq->generated.begin(), s.seq->generated.end());
    pc_->insert(all.data(), std::min<int64_t>(int64_t(all.size()), s.seq->cache.len), s.seq->cache);
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (s.seq) stats_.drafts.add(s.seq->draft_stats);
    if (reason == "cancelled") stats_.cancelled++;
    else if (reason == "error") stats_.failed++;
    else stats_.finished++;
  }
  s.out->push(std::move(e));
}

void Scheduler::start(Seq& s) {
  s.admitted = Clock::now();
  s.seq = std::make_unique<Sequence>(model_, tok_, std::move(s.req), opt_.form);
  const GenerationRequest& req = s.seq->request();
  const int64_t n = int64_t(req.prompt.size());
  if (pc_) s.cached = pc_->restore(req.prompt.data(), n, n - 1, s.seq->cache);
  s.seq->prefilled = s.cached;
  std::lock_guard<std::mutex> lk(mu_);
  stats_.prompt_tokens += n;
  stats_.cached_tokens += s.cached;
}

void Scheduler::loop() {
  std::vector<std::unique_ptr<Seq>> running;
  size_t kv_used = 0;
  for (;;) {
    std::vector<std::unique_ptr<Seq>> admitted, dropped;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty() || !running.empty(); });
      if (stopping_) break;
      // Requests cancelled while waiting leave the queue at once.
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->out->cancelled()) {
          dropped.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      while (!queue_.empty() && int64_t(running.size() + admitted.size()) < opt_.max_seqs &&
             kv_used + queue_.front()->kv_bytes <= opt_.max_kv_bytes) {
        kv_used += queue_.front()->kv_bytes;
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.queued = int64_t(queue_.size());
    }
    for (auto& s : dropped) finish(*s, "cancelled");
    size_t started = 0;
    for (auto& s : admitted) {
      try {
        start(*s);
        running.push_back(std::move(s));
        started++;
      } catch (const std::exception& e) {  // e.g. out of memory for the cache
        kv_used -= s->kv_bytes;
        finish(*s, "error", e.what());
      }
    }
    if (running.empty()) continue;
    // Cancellation is seen here, once per step, so that the followers drop the same sequences.
    for (auto& s : running) s->cancel = s->cancel || s->out->cancelled();
    if (opt_.group) lead(running, started, false);
    run_step(running, kv_used);
  }
  if (opt_.group) lead(running, 0, true);
  for (auto& s : running) finish(*s, "cancelled", "the server is shutting down");
}

void Scheduler::run_step(std::vector<std::unique_ptr<Seq>>& running, size_t& kv_used) {
  for (auto& s : running)
    if (s->cancel) finish(*s, "cancelled");
  step(running);
  // Sequences that ended (or were cancelled) leave the batch here.
  for (auto it = running.begin(); it != running.end();) {
    if ((*it)->done) {
      kv_used -= (*it)->kv_bytes;
      it = running.erase(it);
    } else {
      ++it;
    }
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.running = int64_t(running.size());
    stats_.kv_bytes = kv_used;
  }
  group_steps_++;
  if (opt_.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.step_delay_ms));
}

namespace {
// What a follower checks against rank 0: every sequence's length, position and last token.
template <class Seqs>
uint64_t digest_of(const Seqs& running, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  auto mix = [&](uint64_t v) { h = (h ^ v) * 0x100000001b3ull; };
  for (size_t i = 0; i < n; ++i) {
    const Sequence& q = *running[i]->seq;
    mix(uint64_t(q.generated.size()));
    mix(uint64_t(q.cache.len));
    mix(uint64_t(q.prefilled));
    mix(q.generated.empty() ? ~0ull : uint64_t(uint32_t(q.generated.back())));
  }
  return h;
}
}  // namespace

void Scheduler::lead(const std::vector<std::unique_ptr<Seq>>& running, size_t admitted, bool stop) {
  const size_t before = running.size() - admitted;
  Packer o;
  PlanHeader h;
  h.stop = stop;
  h.step = group_steps_;
  h.admitted = int64_t(admitted);
  h.digest = digest_of(running, before);
  for (size_t i = 0; i < running.size(); ++i)
    if (running[i]->cancel && !running[i]->done) o.pod(int64_t(i)), h.cancelled++;
  for (size_t i = before; i < running.size(); ++i) {
    const Seq& s = *running[i];
    pack(o, s.seq->request());
    o.pod(s.cached);
    pack_rows(o, s.seq->cache, s.cached);
  }
  h.bytes = int64_t(o.b.size());
  opt_.group->broadcast_idle(&h, sizeof h, 0);
  if (h.bytes) opt_.group->broadcast(o.b.data(), h.bytes, 0);
}

void Scheduler::follow() {
  Communicator& g = *opt_.group;
  if (g.rank() == 0) throw Error("scheduler: rank 0 leads; only the other ranks follow");
  std::vector<std::unique_ptr<Seq>> running;
  size_t kv_used = 0;
  for (;;) {
    PlanHeader h;
    g.broadcast_idle(&h, sizeof h, 0);
    if (h.stop) break;
    if (h.step != group_steps_ || h.digest != digest_of(running, running.size()))
      throw Error(strfmt("expert-parallel server: rank %d's sequences differ from rank 0's at step %lld (rank 0 is at step %lld): "
                         "the ranks must compute the same bits (same build, same threads per rank)",
                         g.rank(), (long long)group_steps_, (long long)h.step));
    std::vector<uint8_t> payload(static_cast<size_t>(h.bytes));
    if (h.bytes) g.broadcast(payload.data(), h.bytes, 0);
    Unpacker in(payload, "rank 0's step plan");
    std::vector<int64_t> cancelled(static_cast<size_t>(h.cancelled));
    for (int64_t& i : cancelled) i = in.pod<int64_t>();
    for (int64_t a = 0; a < h.admitted; ++a) {
      auto s = std::make_unique<Seq>();
      s->out = std::make_shared<SequenceStream>();
      s->submitted = s->admitted = Clock::now();
      s->kv_bytes = kv_bytes_for(s->req = unpack_request(in));
      s->seq = std::make_unique<Sequence>(model_, tok_, std::move(s->req), opt_.form);
      s->cached = in.pod<int64_t>();
      unpack_rows(in, s->seq->cache, s->cached);
      s->seq->prefilled = s->cached;
      kv_used += s->kv_bytes;
      running.push_back(std::move(s));
    }
    for (int64_t i : cancelled) {
      if (i < 0 || size_t(i) >= running.size()) throw Error("scheduler: rank 0 cancelled a sequence this rank does not run");
      running[size_t(i)]->cancel = true;
    }
    run_step(running, kv_used);
  }
  for (auto& s : running) finish(*s, "cancelled", "the server is shutting down");
}

void Scheduler::step(std::vector<std::unique_ptr<Seq>>& running) {
  step_seqs_.clear();
  step_who_.clear();
  step_prefilling_.clear();
  int64_t before = 0;  // prompt tokens in the caches before the step
  for (auto& sp : running) {  // oldest first: `running` keeps admission order
    if (sp->done) continue;
    step_seqs_.push_back(sp->seq.get());
    step_who_.push_back(sp.get());
    step_prefilling_.push_back(sp->seq->prefilling());
    before += sp->seq->prefilled;
  }
  if (step_seqs_.empty()) return;
  decoder_.set_drafting(int64_t(step_seqs_.size()) <= opt_.draft_max_seqs);
  const auto t0 = Clock::now();
  int64_t rows = 0;
  try {
    rows = decoder_.step(step_seqs_, opt_.prefill_chunk, events_);
  } catch (const std::exception& e) {
    for (Seq* s : step_who_) finish(*s, "error", e.what());
    return;
  }
  const double dt = since(t0);
  int64_t after = 0;
  for (Sequence* q : step_seqs_) after += q->prefilled;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.steps++;
    stats_.step_rows += rows;
    stats_.step_seqs += int64_t(step_seqs_.size());
    stats_.last_step_seqs = int64_t(step_seqs_.size());
    stats_.last_step_rows = rows;
    stats_.busy_seconds += dt;
    stats_.prefilled_tokens += after - before;
  }
  for (size_t j = 0; j < step_seqs_.size(); ++j) {
    Seq& s = *step_who_[j];
    Sequence& q = *step_seqs_[j];
    if (step_prefilling_[j] && !q.prefilling()) {
      // The prompt's last chunk ran this step: its blocks go into the prefix cache, and the first token
      // was sampled.
      if (pc_) pc_->insert(q.request().prompt.data(), int64_t(q.request().prompt.size()), q.cache);
      s.has_first = true;
      s.first_token = Clock::now();
    }
    for (TokenEvent& t : events_[j]) {
      StreamEvent e;
      e.token = t.token;
      e.text = std::move(t.text);
      e.logprob = t.logprob;
      e.top = std::move(t.top);
      s.out->push(std::move(e));
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.generated_tokens += int64_t(events_[j].size());
    }
    if (q.done()) finish(s, q.finish_reason());
  }
}

}  // namespace seek
