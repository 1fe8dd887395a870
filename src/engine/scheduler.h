// scheduler.h — the server's scheduler: one thread that owns the model and runs continuous batching over
// requests that arrive at any time from other threads, on the decoding step (engine/decode.h).
//
// Each step is one decoding step (one Model::forward_batch) over:
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
// Speculative decoding per request (GenerationRequest::speculative), while the batch has at most
// draft_max_seqs sequences: a sequence that runs in a larger batch stops drafting for good. The KV
// memory of a drafting request includes its MTP cache.
//
// Expert parallelism (SchedulerOptions::group, a group of N > 1 processes, each with this rank's share
// of the routed experts): rank 0's scheduler owns the requests and decides every step; the other ranks
// run Scheduler::follow, which repeats rank 0's steps on the same tokens, so that every MoE layer's
// collective is called by every rank. Before each step rank 0 broadcasts what changed at the boundary:
// the requests admitted (with the rows its prefix cache restored: the followers keep no cache of their
// own) and the sequences cancelled. Each rank samples for itself: the logits are the same bits on every
// rank (the group's sums are made in rank order), so the tokens are the same, and each broadcast
// carries a digest of rank 0's sequences that the followers check, so a rank that drifts stops the job
// with an error naming the step instead of running a different batch. While idle, followers sleep
// between polls.
//
// Output per sequence as the decoding step gives it: sampling per sequence (ids past the tokenizer's
// vocabulary are never sampled), stop ids and stop strings, streamed text that never splits a UTF-8
// character, and log-probabilities when asked for.
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

#include "engine/decode.h"
#include "engine/prefix_cache.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "util/comm.h"

namespace seek {

struct SchedulerOptions {
  int64_t max_seqs = 16;                      // sequences in the running batch
  int64_t max_queue = 256;                    // waiting requests; more are refused (QueueFull)
  int64_t prefill_chunk = 512;                // prompt tokens per step over all prefilling sequences
  size_t max_kv_bytes = size_t(8) << 30;      // KV caches of the running sequences
  MlaForm form = MlaForm::Absorbed;
  int step_delay_ms = 0;                      // sleep after each step: a throttle (tests make slow streams with it)
  // Speculative decoding drafts while at most this many sequences are in the batch (0: never): in a
  // large batch a step already reads each weight once for many tokens, and drafts add rows that cost
  // as much as they give where the step is bound by compute. Measured (docs/results.md, issue 14): the
  // shipped 1.4M teacher gains 1.43x at 4 streams, 0.99x at 8, 0.74x at 16; the 64M teacher 1.28x at
  // 8 and 1.32x at 16. 8 is never slower on either.
  int64_t draft_max_seqs = 8;
  // Expert parallelism: the group whose rank 0 schedules and whose other ranks follow (null: one process).
  Communicator* group = nullptr;
};

struct StreamEvent {
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

// The per-request channel between the scheduler's thread and the thread that serves the request.
class SequenceStream {
 public:
  // Moves pending events into `out`, waiting up to `timeout` for one. Returns false once the final
  // event has been handed out (nothing more will come).
  bool next(std::vector<StreamEvent>& out, std::chrono::milliseconds timeout);
  // Asks the scheduler to drop the sequence at the next step (its final event says "cancelled").
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Scheduler;
  void push(StreamEvent e);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;
  bool final_taken_ = false;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerStats {
  int64_t queued = 0, running = 0;  // now
  size_t kv_bytes = 0;              // now, running sequences
  int64_t submitted = 0, refused = 0, finished = 0, cancelled = 0, failed = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0, prefilled_tokens = 0, generated_tokens = 0;
  int64_t steps = 0, step_rows = 0, step_seqs = 0;  // sums over steps: tokens and sequences per step
  int64_t last_step_seqs = 0, last_step_rows = 0;    // the latest step's batch
  double busy_seconds = 0;                           // inside the decoding step
  DraftStats drafts;                                 // decode steps and drafts of finished sequences
};

class Scheduler {
 public:
  // tokenizer may be null (no text, no stop strings); prefix_cache may be null (no context caching).
  // On a follower (opt.group with rank > 0) no thread starts: call follow().
  Scheduler(Model& model, const Tokenizer* tokenizer, PrefixCache* prefix_cache, SchedulerOptions opt);
  ~Scheduler();  // stops the thread (rank 0 tells the followers to stop); unfinished sequences end with "cancelled"
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  enum class Refusal { None, QueueFull, TooLarge };
  struct Submitted {
    std::shared_ptr<SequenceStream> stream;  // null when refused
    Refusal refusal = Refusal::None;
    std::string message;
  };
  // Validates the request (validate_request: throws Error) and queues it.
  Submitted submit(GenerationRequest r);
  SchedulerStats stats() const;
  // KV bytes a request needs: its positions in the main cache, and with drafts its MTP module's cache.
  size_t kv_bytes_for(const GenerationRequest& r) const;
  const SchedulerOptions& options() const { return opt_; }
  // Stops the thread now (rank 0: and the followers); requests submitted later wait forever. For a
  // server that leaves through _exit, whose HTTP threads may still hold the scheduler.
  void stop();
  // A follower's whole life: repeats rank 0's steps until rank 0's scheduler stops. Throws Error when
  // this rank's sequences drift from rank 0's.
  void follow();

 private:
  struct Seq;
  void loop();
  // The boundary's cancellations, one step, and the sequences that ended leave (freeing kv_used).
  void run_step(std::vector<std::unique_ptr<Seq>>& running, size_t& kv_used);
  void step(std::vector<std::unique_ptr<Seq>>& running);
  // Rank 0: broadcasts the step's changes — the last `admitted` of `running` and the cancelled ones.
  void lead(const std::vector<std::unique_ptr<Seq>>& running, size_t admitted, bool stop);
  void start(Seq& s);
  void finish(Seq& s, const std::string& reason, const std::string& error = {});

  Model& model_;
  const Tokenizer* tok_;
  PrefixCache* pc_;
  SchedulerOptions opt_;
  Decoder decoder_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Seq>> queue_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::vector<Sequence*> step_seqs_;
  std::vector<Seq*> step_who_;
  std::vector<bool> step_prefilling_;
  std::vector<std::vector<TokenEvent>> events_;
  int64_t group_steps_ = 0;  // steps told to the followers (rank 0) or repeated (a follower)
  std::thread thread_;
};

}  // namespace seek
