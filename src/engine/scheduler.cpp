// scheduler.cpp — see scheduler.h.
#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace seek {

using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
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
  bool done = false;
  Clock::time_point submitted, admitted, first_token;
  bool has_first = false;
};

Scheduler::Scheduler(Model& model, const Tokenizer* tokenizer, PrefixCache* prefix_cache, SchedulerOptions opt)
    : model_(model), tok_(tokenizer), pc_(prefix_cache), opt_(opt), decoder_(model, tokenizer) {
  if (opt_.max_seqs < 1 || opt_.max_queue < 0 || opt_.prefill_chunk < 1)
    throw Error("scheduler: max_seqs and prefill_chunk must be at least 1, max_queue at least 0");
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& s : queue_) finish(*s, "cancelled", "the server is shutting down");
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
    for (auto& s : admitted) {
      try {
        start(*s);
        running.push_back(std::move(s));
      } catch (const std::exception& e) {  // e.g. out of memory for the cache
        kv_used -= s->kv_bytes;
        finish(*s, "error", e.what());
      }
    }
    if (running.empty()) continue;
    step(running);
    // Sequences that ended (or were cancelled) leave the batch here.
    for (auto it = running.begin(); it != running.end();) {
      if ((*it)->out->cancelled() && !(*it)->done) finish(**it, "cancelled");
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
    if (opt_.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.step_delay_ms));
  }
  for (auto& s : running) finish(*s, "cancelled", "the server is shutting down");
}

void Scheduler::step(std::vector<std::unique_ptr<Seq>>& running) {
  step_seqs_.clear();
  step_who_.clear();
  step_prefilling_.clear();
  int64_t before = 0;  // prompt tokens in the caches before the step
  for (auto& sp : running) {  // oldest first: `running` keeps admission order
    if (sp->done || sp->out->cancelled()) continue;
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
