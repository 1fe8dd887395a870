// scheduler.h — the serving engine: one thread that owns the model and runs continuous batching over
// requests that arrive at any time from other threads.
//
// Each step is one Model::forward_batch over:
//   - every running sequence that is decoding (one token each), and
//   - prompt chunks of sequences still prefilling, oldest first, at most `prefill_chunk` prompt tokens
//     in all per step (chunked prefill: a long prompt joins over several steps and never stalls the
//     streams already running for more than one chunk's time).
// Requests join at the next step boundary and leave at the step where they finish, are cancelled
// (SequenceStream::cancel, e.g. the client disconnected) or fail; their KV memory is freed there.
//
// Admission policy (documented for the API's 429/413):
//   - submit() refuses a request outright when the queue already holds `max_queue` requests (QueueFull,
//     HTTP 429), or when the request alone would need more KV memory than `max_kv_bytes` (TooLarge, 413).
//   - Waiting requests are admitted strictly first-in first-out, while fewer than `max_seqs` sequences
//     run and the KV memory of the running ones plus the head's (prompt + max_new_tokens positions,
//     allocated at admission) fits in `max_kv_bytes`. The head is never skipped for a smaller request,
//     so no request starves.
//   - Fairness in the batch: every decoding sequence gets one token per step; the prefill budget goes
//     to the oldest prefilling sequence first.
// Context caching: at admission the prefix cache (if any) restores the longest cached prefix of the
// prompt (whole blocks, at least one prompt token left to prefill); the prompt's blocks are inserted
// when its prefill ends, and prompt + output when the sequence ends.
//
// Output per sequence as generator.h's: sampling per sequence (ids past the tokenizer's vocabulary are
// never sampled), stop ids and stop strings, streamed text that never splits a UTF-8 character.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/generator.h"
#include "engine/prefix_cache.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace seek {

struct EngineOptions {
  int64_t max_seqs = 16;                      // sequences in the running batch
  int64_t max_queue = 256;                    // waiting requests; more are refused (QueueFull)
  int64_t prefill_chunk = 512;                // prompt tokens per step over all prefilling sequences
  size_t max_kv_bytes = size_t(8) << 30;      // KV caches of the running sequences
  MlaForm form = MlaForm::Absorbed;
  int step_delay_ms = 0;                      // testing only: sleep after each step (slow streams)
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  StopCriteria stop;
  int top_logprobs = -1;  // -1: no logprobs; k >= 0: the chosen token's logprob and the k most likely
};

struct EngineEvent {
  int32_t token = -1;      // the generated token; -1 on an event that carries only text or the end
  std::string text;        // text that became final at this event (may be empty)
  float logprob = 0;       // log-softmax of the model's logits (before penalties and temperature)
  std::vector<std::pair<int32_t, float>> top;  // the top_logprobs most likely tokens, best first
  bool final = false;      // the last event of the sequence
  std::string finish_reason;  // final: "stop", "length", "cancelled" or "error"
  std::string error;          // finish_reason "error": what went wrong
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;  // final
  double queue_seconds = 0, first_token_seconds = 0, total_seconds = 0;  // final: since submit()
};

// The per-request channel between the engine thread and the thread that serves the request.
class SequenceStream {
 public:
  // Moves pending events into `out`, waiting up to `timeout` for one. Returns false once the final
  // event has been handed out (nothing more will come).
  bool next(std::vector<EngineEvent>& out, std::chrono::milliseconds timeout);
  // Asks the engine to drop the sequence at the next step (its final event says "cancelled").
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Engine;
  void push(EngineEvent e);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EngineEvent> events_;
  bool final_taken_ = false;
  std::atomic<bool> cancelled_{false};
};

struct EngineStats {
  int64_t queued = 0, running = 0;  // now
  size_t kv_bytes = 0;              // now, running sequences
  int64_t submitted = 0, refused = 0, finished = 0, cancelled = 0, failed = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0, prefilled_tokens = 0, generated_tokens = 0;
  int64_t steps = 0, step_rows = 0, step_seqs = 0;  // sums over steps: tokens and sequences per step
  int64_t last_step_seqs = 0, last_step_rows = 0;    // the latest step's batch
  double busy_seconds = 0;                           // inside forward_batch
};

class Engine {
 public:
  // tokenizer may be null (no text, no stop strings); prefix_cache may be null (no context caching).
  Engine(Model& model, const Tokenizer* tokenizer, PrefixCache* prefix_cache, EngineOptions opt);
  ~Engine();  // stops the thread; unfinished sequences end with "cancelled"
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  enum class Refusal { None, QueueFull, TooLarge };
  struct Submitted {
    std::shared_ptr<SequenceStream> stream;  // null when refused
    Refusal refusal = Refusal::None;
    std::string message;
  };
  // Validates the request (throws Error: empty prompt, max_new_tokens < 1, over the context, bad
  // sampling parameters, stop strings without a tokenizer) and queues it.
  Submitted submit(EngineRequest r);
  EngineStats stats() const;
  // KV bytes a request with this many positions needs.
  size_t kv_bytes_for(int64_t positions) const;
  const EngineOptions& options() const { return opt_; }

 private:
  struct Seq;
  void loop();
  void step(std::vector<std::unique_ptr<Seq>>& running);
  void start(Seq& s);
  void accept(Seq& s, int32_t tok, const float* raw_logits);
  void finish(Seq& s, const std::string& reason, const std::string& error = {});
  void emit(Seq& s, EngineEvent e);

  Model& model_;
  const Tokenizer* tok_;
  PrefixCache* pc_;
  EngineOptions opt_;
  int64_t usable_vocab_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Seq>> queue_;
  bool stopping_ = false;
  EngineStats stats_;
  std::vector<float> logits_, scratch_;
  std::thread thread_;
};

}  // namespace seek
