// serve_cmd.cpp — `seek serve`: the OpenAI/DeepSeek-compatible server (src/server) over the continuous
// batching scheduler (src/engine/scheduler.h) with context caching in RAM and on disk
// (src/engine/prefix_cache.h).
//
// Under mpiexec the routed experts are spread over the ranks (expert parallelism): rank 0 serves HTTP
// and schedules, the other ranks follow its steps (engine/scheduler.h).
//
// The port is bound first and answers 503 while the model loads; SIGINT or SIGTERM stop it cleanly
// (running streams end, queued disk-cache writes are finished).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "commands.h"
#include "engine/generation_config.h"
#include "engine/prefix_cache.h"
#include "engine/scheduler.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "model/model_card.h"
#include "model/tokenizer.h"
#include "nn/moe.h"
#include "server/server.h"
#include "util/comm.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace seek {

sigset_t block_stop_signals() {
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  return stop_set;
}

namespace {

struct ServeFlags {
  std::string model, tokenizer, cache_dir, name;
  ServerOptions server;
  SchedulerOptions scheduler;
  double kv_gib = 8, cache_ram_mib = 1024, cache_disk_gib = 16;
  bool no_cache = false;
};

// Under mpiexec, ranks 1..N-1: no HTTP, no prefix cache; repeat rank 0's steps with this rank's
// experts until rank 0 stops. Signals are rank 0's to act on: mpiexec passes SIGINT/SIGTERM to every
// rank, and a follower that left first would end the job as a failure (join_world blocked them before
// MPI started its threads).
int follow_serve(const ServeFlags& f) {
  block_stop_signals();
  std::unique_ptr<Model> model = Model::load(f.model);
  const Tokenizer tok = load_model_tokenizer(f.model, f.tokenizer);
  const std::unique_ptr<ExpertParallel> ep = spread_experts(*model, f.model);
  SchedulerOptions so = f.scheduler;
  so.group = &world();
  Scheduler follower(*model, &tok, nullptr, so);
  follower.follow();
  finalize_world();
  return 0;
}

int run_serve(ServeFlags& f) {
  if (f.model.empty()) f.model = default_model_dir();
  if (f.model.empty())
    throw Error("seek serve: no model given: pass -m DIR, a model directory (config.json, *.safetensors, tokenizer.json), "
                "e.g. one made by `seek demo --out DIR`; this build has no shipped default model");
  if (!fs::is_directory(f.model) && !is_gguf_file(f.model))
    throw Error(f.model + ": not a model directory (config.json, *.safetensors, tokenizer.json) or a GGUF file");
  const std::string tdir = f.tokenizer.empty() ? f.model : f.tokenizer;
  if (fs::is_directory(tdir) && !fs::exists(fs::path(tdir) / "tokenizer.json"))
    throw Error(tdir + ": no tokenizer.json (pass --tokenizer DIR)");
  const fs::path model_path = fs::path(f.model).lexically_normal();
  f.server.model_name = !f.name.empty()              ? f.name
                        : model_path.extension() == ".gguf" ? model_path.stem().string()  // "m.gguf" serves as "m"
                                                            : model_path.filename().string();
  if (f.server.model_name.empty()) f.server.model_name = "seek";
  f.scheduler.max_kv_bytes = size_t(f.kv_gib * double(1ull << 30));
  if (world().size() > 1) {
    if (world().rank() != 0) return follow_serve(f);
    f.scheduler.group = &world();
  }

  // Signals go to this thread only (sigwait below); every thread started from here inherits the mask.
  const sigset_t stop_set = block_stop_signals();
  signal(SIGPIPE, SIG_IGN);  // a client that vanished is a failed write, not a dead server

  if (f.server.host != "127.0.0.1" && f.server.host != "localhost" && f.server.api_key.empty())
    std::fprintf(stderr, "seek serve: warning: listening on %s without --api-key: anyone who can reach it can use it\n",
                 f.server.host.c_str());
  Server server(f.server);
  server.bind();
  std::thread http([&] { server.listen(); });
  std::printf("seek serve: listening on http://%s:%d (loading %s)\n", f.server.host.c_str(), server.port(), f.model.c_str());
  std::fflush(stdout);

  std::unique_ptr<Model> model;
  std::unique_ptr<ExpertParallel> ep;
  Tokenizer tok;
  std::unique_ptr<PrefixCache> pc;
  std::unique_ptr<Scheduler> scheduler;
  try {
    model = Model::load(f.model);
    ep = spread_experts(*model, f.model);
    tok = load_model_tokenizer(f.model, f.tokenizer);
    if (tok.vocab_size() > model->config().vocab_size)
      throw Error(strfmt("%s: the tokenizer has %lld tokens but the model's vocab_size is %lld", tdir.c_str(),
                         (long long)tok.vocab_size(), (long long)model->config().vocab_size));
    const uint64_t fp = model_fingerprint(f.model);
    if (!f.no_cache) {
      PrefixCacheOptions po;
      po.ram_bytes = size_t(f.cache_ram_mib * double(1 << 20));
      po.disk_dir = f.cache_dir;
      po.disk_bytes = size_t(f.cache_disk_gib * double(1ull << 30));
      po.salt = fp;
      pc = std::make_unique<PrefixCache>(model->config(), f.scheduler.form, po);
    }
    scheduler = std::make_unique<Scheduler>(*model, &tok, pc.get(), f.scheduler);
    server.attach(*model, tok, pc.get(), *scheduler, fp, read_generation_config(f.model), describe_model(f.model, model->config()));
  } catch (...) {
    server.stop();
    http.join();
    throw;
  }
  std::printf("seek serve: ready — model \"%s\" (%s), %lld-token context; prefix cache %s%s%s%s\n", f.server.model_name.c_str(),
              model->config().model_type_name.c_str(), (long long)model->config().max_position_embeddings,
              pc ? "in RAM" : "off", pc && !f.cache_dir.empty() ? " and on disk at " : "", pc ? f.cache_dir.c_str() : "",
              ep ? ("; experts spread over " + world().describe()).c_str() : "");
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_set, &sig);
  std::printf("seek serve: stopping (signal %d)\n", sig);
  std::fflush(stdout);
  server.stop();  // no new connections
  if (pc) pc->flush();  // the disk tier has every block queued so far
  if (ep) {  // the followers stop with the scheduler's last broadcast; then MPI ends cleanly
    scheduler->stop();
    finalize_world();
  }
  // Requests still in flight and idle keep-alive connections would hold the HTTP threads (and with
  // them the engine) for their timeouts: everything worth keeping is written, so leave now, without
  // tearing down objects that those threads may still be using.
  std::fflush(nullptr);
  _exit(0);
}

}  // namespace

void register_serve_commands(CLI::App& app) {
  static ServeFlags f;
  auto* s = app.add_subcommand("serve", "OpenAI/DeepSeek-compatible API server with continuous batching and context caching");
  s->add_option("-m,--model", f.model, "model directory (config.json, *.safetensors, tokenizer.json); default: the shipped models/seek-tiny");
  s->add_option("--tokenizer", f.tokenizer, "tokenizer directory (default: the model directory)");
  s->add_option("--host", f.server.host, "address to listen on")->capture_default_str();
  s->add_option("--port", f.server.port, "port (0: any free one)")->capture_default_str()->check(CLI::Range(0, 65535));
  s->add_option("--api-key", f.server.api_key, "require Authorization: Bearer KEY on every route but /health and /");
  s->add_option("--name", f.name, "model id in the API (default: the model directory's name)");
  s->add_flag("--think", f.server.think, "reasoning on by default (R1's <think> prefill); requests may override with \"thinking\"");
  s->add_option("--cache-dir", f.cache_dir, "disk tier of the prefix cache (kept across restarts)");
  s->add_option("--cache-ram-mib", f.cache_ram_mib, "RAM tier budget of the prefix cache")->capture_default_str();
  s->add_option("--cache-disk-gib", f.cache_disk_gib, "disk tier budget of the prefix cache")->capture_default_str();
  s->add_flag("--no-cache", f.no_cache, "no context caching");
  s->add_option("--max-seqs", f.scheduler.max_seqs, "sequences in the running batch")->capture_default_str()->check(CLI::Range(1, 4096));
  s->add_option("--max-queue", f.scheduler.max_queue, "waiting requests before 429")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  s->add_option("--prefill-chunk", f.scheduler.prefill_chunk, "prompt tokens per step (chunked prefill)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  s->add_option("--kv-gib", f.kv_gib, "KV cache memory of running sequences")->capture_default_str();
  add_draft_option(s, f.server.draft_tokens,
                   "default: on for models with an MTP module; a request's \"draft_tokens\" overrides");
  s->add_option("--draft-min-prob", f.server.min_draft_prob,
                "stop drafting at a draft the MTP module gives less than this probability (\"min_draft_prob\")")
      ->check(CLI::Range(0.0, 1.0));
  s->add_option("--draft-max-seqs", f.scheduler.draft_max_seqs,
                "draft only while at most this many sequences are in the batch (larger batches already share each weight read)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  s->add_option("--max-body-bytes", f.server.limits.max_body_bytes, "largest request body")->capture_default_str();
  s->add_option("--max-prompt-tokens", f.server.limits.max_prompt_tokens, "longest prompt (also capped by the context)")->capture_default_str();
  s->add_option("--max-tokens", f.server.limits.max_tokens, "largest max_tokens a request may ask for")->capture_default_str();
  s->add_option("--max-n", f.server.limits.max_n, "largest n")->capture_default_str()->check(CLI::Range(1, 128));
  s->add_option("--http-threads", f.server.http_threads, "connections served at once")->capture_default_str()->check(CLI::Range(4, 4096));
  s->add_option("--debug-step-delay-ms", f.scheduler.step_delay_ms, "testing: sleep after each engine step")->group("");
  s->callback([] {
    int rc = run_serve(f);
    if (rc) throw CLI::RuntimeError(rc);
  });
}

}  // namespace seek
