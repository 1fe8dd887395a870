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

bool SequenceStream::next(std::vector<EngineEvent>& out, std::chrono::milliseconds timeout) {
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

void SequenceStream::push(EngineEvent e) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

struct Engine::Seq {
  std::shared_ptr<SequenceStream> out;
  EngineRequest req;
  KVCache cache;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<StreamDecoder> text;
  std::unique_ptr<StopMatcher> stops;
  int64_t pos = 0;     // prompt tokens in the cache
  int64_t cached = 0;  // of which restored from the prefix cache
  int32_t last = -1;
  std::vector<int32_t> generated;
  size_t kv_bytes = 0;
  bool done = false;
  Clock::time_point submitted, admitted, first_token;
  bool has_first = false;
};

Engine::Engine(Model& model, const Tokenizer* tokenizer, PrefixCache* prefix_cache, EngineOptions opt)
    : model_(model), tok_(tokenizer), pc_(prefix_cache), opt_(opt) {
  const int64_t V = model_.config().vocab_size;
  if (tok_ && tok_->vocab_size() > V)
    throw Error(strfmt("the tokenizer has %lld tokens but the model's vocabulary is %lld", (long long)tok_->vocab_size(),
                       (long long)V));
  if (opt_.max_seqs < 1 || opt_.max_queue < 0 || opt_.prefill_chunk < 1)
    throw Error("engine: max_seqs and prefill_chunk must be at least 1, max_queue at least 0");
  usable_vocab_ = tok_ ? tok_->vocab_size() : V;
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& s : queue_) finish(*s, "cancelled", "the server is shutting down");
}

size_t Engine::kv_bytes_for(int64_t positions) const {
  return size_t(KVCache::values_per_token(model_.config(), opt_.form)) * size_t(model_.config().num_hidden_layers) *
         size_t(positions) * sizeof(float);
}

Engine::Submitted Engine::submit(EngineRequest r) {
  const Config& c = model_.config();
  if (r.prompt.empty()) throw Error("empty prompt");
  if (r.stop.max_new_tokens < 1) throw Error("max_new_tokens must be at least 1");
  if (!tok_ && !r.stop.stop_strings.empty()) throw Error("stop strings need a tokenizer");
  for (int32_t id : r.prompt)
    if (id < 0 || id >= c.vocab_size) throw Error(strfmt("prompt token id %d is outside the vocabulary [0, %lld)", id, (long long)c.vocab_size));
  const int64_t positions = int64_t(r.prompt.size()) + r.stop.max_new_tokens;
  if (positions > c.max_position_embeddings)
    throw Error(strfmt("%zu prompt + %lld new tokens exceed the model's context of %lld tokens", r.prompt.size(),
                       (long long)r.stop.max_new_tokens, (long long)c.max_position_embeddings));
  r.sampling.validate(c.vocab_size);
  auto s = std::make_unique<Seq>();
  s->out = std::make_shared<SequenceStream>();
  s->kv_bytes = kv_bytes_for(positions);
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

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void Engine::emit(Seq& s, EngineEvent e) { s.out->push(std::move(e)); }

void Engine::finish(Seq& s, const std::string& reason, const std::string& error) {
  if (s.done) return;
  s.done = true;
  EngineEvent e;
  if (s.text && reason != "cancelled" && reason != "error") {
    e.text = s.stops->stopped() ? std::string() : s.stops->push(s.text->flush());
    if (!s.stops->stopped()) e.text += s.stops->finish();
  }
  e.final = true;
  e.finish_reason = reason;
  e.error = error;
  e.prompt_tokens = int64_t(s.req.prompt.size());
  e.cached_tokens = s.cached;
  e.completion_tokens = int64_t(s.generated.size());
  e.total_seconds = since(s.submitted);
  e.queue_seconds = std::chrono::duration<double>(s.admitted - s.submitted).count();
  if (s.admitted < s.submitted) e.queue_seconds = e.total_seconds;
  e.first_token_seconds = s.has_first ? std::chrono::duration<double>(s.first_token - s.submitted).count() : e.total_seconds;
  // Prompt + output rows (all but the last token, whose row was never computed) for the next turn.
  if (pc_ && reason != "error" && s.pos == int64_t(s.req.prompt.size()) && s.cache.len > 0) {
    std::vector<int32_t> all = s.req.prompt;
    all.insert(all.end(), s.generated.begin(), s.generated.end());
    pc_->insert(all.data(), std::min<int64_t>(int64_t(all.size()), s.cache.len), s.cache);
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (reason == "cancelled") stats_.cancelled++;
    else if (reason == "error") stats_.failed++;
    else stats_.finished++;
  }
  emit(s, std::move(e));
}

void Engine::start(Seq& s) {
  s.admitted = Clock::now();
  const int64_t positions = int64_t(s.req.prompt.size()) + s.req.stop.max_new_tokens;
  s.cache = model_.new_cache(positions, opt_.form);
  s.sampler = std::make_unique<Sampler>(s.req.sampling, model_.config().vocab_size);
  s.sampler->add_prompt(s.req.prompt.data(), int64_t(s.req.prompt.size()));
  if (tok_) s.text = std::make_unique<StreamDecoder>(*tok_, true);
  s.stops = std::make_unique<StopMatcher>(s.req.stop.stop_strings);
  const int64_t n = int64_t(s.req.prompt.size());
  if (pc_) s.cached = pc_->restore(s.req.prompt.data(), n, n - 1, s.cache);
  s.pos = s.cached;
  std::lock_guard<std::mutex> lk(mu_);
  stats_.prompt_tokens += n;
  stats_.cached_tokens += s.cached;
}

void Engine::accept(Seq& s, int32_t tok, const float* raw) {
  if (!s.has_first) {
    s.has_first = true;
    s.first_token = Clock::now();
  }
  const StopCriteria& stop = s.req.stop;
  if (std::find(stop.stop_ids.begin(), stop.stop_ids.end(), tok) != stop.stop_ids.end()) {
    finish(s, "stop");
    return;
  }
  s.generated.push_back(tok);
  s.last = tok;
  EngineEvent e;
  e.token = tok;
  if (s.req.top_logprobs >= 0 && raw) {
    // log-softmax over the usable vocabulary of the raw logits
    const int64_t V = usable_vocab_;
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; ++i) mx = std::max(mx, raw[i]);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(double(raw[i] - mx));
    const float lse = mx + float(std::log(sum));
    e.logprob = raw[tok] - lse;
    const int64_t k = std::min<int64_t>(s.req.top_logprobs, V);
    if (k > 0) {
      std::vector<std::pair<float, int32_t>> best;
      best.reserve(size_t(V));
      for (int64_t i = 0; i < V; ++i) best.push_back({raw[i], int32_t(i)});
      std::partial_sort(best.begin(), best.begin() + k, best.end(),
                        [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      for (int64_t i = 0; i < k; ++i) e.top.push_back({best[size_t(i)].second, best[size_t(i)].first - lse});
    }
  }
  bool stopped = false;
  if (s.text) {
    e.text = s.stops->push(s.text->push(tok));
    stopped = s.stops->stopped();
  }
  emit(s, std::move(e));
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.generated_tokens++;
  }
  if (stopped) finish(s, "stop");
  else if (int64_t(s.generated.size()) >= stop.max_new_tokens) finish(s, "length");
}

void Engine::loop() {
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

void Engine::step(std::vector<std::unique_ptr<Seq>>& running) {
  const int64_t V = model_.config().vocab_size;
  std::vector<Model::BatchItem> items;
  std::vector<Seq*> who;
  std::vector<bool> completes;  // the item's logits are a next-token distribution
  for (auto& sp : running) {
    Seq& s = *sp;
    if (s.done || s.out->cancelled()) continue;
    if (s.pos == int64_t(s.req.prompt.size())) {
      items.push_back({&s.cache, &s.last, 1});
      who.push_back(&s);
      completes.push_back(true);
    }
  }
  int64_t budget = opt_.prefill_chunk, rows = int64_t(items.size());
  for (auto& sp : running) {  // oldest first: `running` keeps admission order
    Seq& s = *sp;
    if (s.done || s.out->cancelled() || budget == 0) continue;
    const int64_t left = int64_t(s.req.prompt.size()) - s.pos;
    if (left == 0) continue;
    const int64_t take = std::min(left, budget);
    items.push_back({&s.cache, s.req.prompt.data() + s.pos, take});
    who.push_back(&s);
    completes.push_back(take == left);
    budget -= take;
    rows += take;
  }
  if (items.empty()) return;
  logits_.resize(items.size() * size_t(V));
  const auto t0 = Clock::now();
  try {
    model_.forward_batch(items, logits_.data());
  } catch (const std::exception& e) {
    for (Seq* s : who) finish(*s, "error", e.what());
    return;
  }
  const double dt = since(t0);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.steps++;
    stats_.step_rows += rows;
    stats_.step_seqs += int64_t(items.size());
    stats_.last_step_seqs = int64_t(items.size());
    stats_.last_step_rows = rows;
    stats_.busy_seconds += dt;
  }
  for (size_t j = 0; j < items.size(); ++j) {
    Seq& s = *who[j];
    const bool prefilling = s.pos < int64_t(s.req.prompt.size());
    if (prefilling) {
      s.pos += items[j].n;
      std::lock_guard<std::mutex> lk(mu_);
      stats_.prefilled_tokens += items[j].n;
    }
    if (!completes[j]) continue;
    if (prefilling && pc_) pc_->insert(s.req.prompt.data(), s.pos, s.cache);
    float* z = &logits_[j * size_t(V)];
    for (int64_t i = usable_vocab_; i < V; ++i) z[i] = -INFINITY;
    const float* raw = nullptr;
    if (s.req.top_logprobs >= 0) {
      scratch_.assign(z, z + V);
      raw = scratch_.data();
    }
    const int32_t tok = s.sampler->sample(z);
    accept(s, tok, raw);
  }
}

}  // namespace seek
