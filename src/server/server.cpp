// server.cpp — see server.h.
#include "server/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <random>

#include "engine/reasoning.h"
#include "model/chat_template.h"
#include "server/metrics.h"
#include "server/web_assets.h"
#include "util/error.h"

namespace seek {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Backend {
  Model* model = nullptr;
  const Tokenizer* tok = nullptr;
  PrefixCache* pc = nullptr;
  Scheduler* scheduler = nullptr;
  std::optional<ChatStyle> style;
  std::string fingerprint;
  ApiLimits limits;              // the server's, with the model's generation_config.json as defaults
  std::vector<int32_t> eos_ids;  // the model's generation_config.json's, besides the tokenizer's
  std::string description;       // what the model is, in a line (model/model_card.h)
};

std::string random_hex(size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += hex[rng() & 15];
  return s;
}

uint64_t random_seed() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

// One choice of a request: its scheduler stream and what it has produced so far.
struct Choice {
  std::shared_ptr<SequenceStream> stream;
  std::unique_ptr<ReasoningStream> rs;  // chat: splits reasoning from content
  std::string content, reasoning;       // chat (content is the text for completions)
  int64_t tokens = 0, reasoning_tokens = 0;
  json logprobs = json::array();  // chat: content entries; completions: built at the end
  std::vector<std::string> lp_tokens;
  std::vector<float> lp_values;
  std::vector<json> lp_top;
  bool done = false;
  StreamEvent final;
};

struct Delta {
  std::string reasoning, content;
};

// One request in flight: what its response needs, shared by the handler and the streaming provider.
struct Job {
  bool chat = true, want_logprobs = false, include_usage = false, think = false;
  const Tokenizer* tok = nullptr;
  int64_t prompt_tokens = 0, created = 0;
  std::string id, model, fingerprint, route;
  std::vector<Choice> choices;
  bool started = false, finished = false;
  Clock::time_point last_write = Clock::now();
};

const char* finish_reason(const StreamEvent& f) { return f.finish_reason == "length" ? "length" : "stop"; }

}  // namespace

// Debian's cpp-httplib is built with a listen backlog of 5: a burst of connections overflows it while
// the accept thread waits for a core, and the kernel drops them. The socket is reachable from a
// subclass, and listen() may be called again to raise the backlog.
struct HttpServer : httplib::Server {
  void raise_backlog() {
    if (svr_sock_ != INVALID_SOCKET) ::listen(svr_sock_, 4096);
  }
};

struct Server::Impl {
  ServerOptions opt;
  HttpServer http;
  std::atomic<Backend*> backend{nullptr};
  Backend storage;
  Histogram request_seconds{latency_buckets()}, first_token_seconds{latency_buckets()}, queue_seconds{latency_buckets()};
  std::mutex status_mu;
  std::map<std::string, int64_t> responses;  // label text `route",code="status` -> count
  std::atomic<int64_t> streams_open{0};

  void count(const std::string& route, int status) {
    std::lock_guard<std::mutex> lk(status_mu);
    responses[route + "\",code=\"" + std::to_string(status)]++;
  }

  void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(dump_json(error_json(e)), "application/json");
  }

  Backend* ready() {
    Backend* b = backend.load();
    if (!b) throw ApiError(503, "the model is still loading; retry shortly", "service_unavailable", "", "loading");
    return b;
  }

  std::vector<std::string> model_ids() const {
    std::vector<std::string> ids = {opt.model_name};
    for (const char* alias : {"deepseek-chat", "deepseek-reasoner"})
      if (opt.model_name != alias) ids.push_back(alias);
    return ids;
  }

  json token_logprob(const Tokenizer& tok, int32_t id, float lp) {
    const std::string_view b = tok.bytes(id);
    json bytes = json::array();
    for (unsigned char c : b) bytes.push_back(int(c));
    return {{"token", std::string(b)}, {"logprob", lp}, {"bytes", bytes}};
  }

  // Applies one scheduler event to a choice; returns what it adds to the output.
  Delta apply(Choice& c, bool chat, const StreamEvent& e) {
    Delta d;
    if (e.token >= 0) {
      c.tokens++;
      if (c.rs && c.rs->in_reasoning()) c.reasoning_tokens++;
    }
    if (chat) {
      ReasoningStream::Delta rd = c.rs->push(e.text);
      if (e.final) {
        ReasoningStream::Delta tail = c.rs->finish();
        rd.reasoning += tail.reasoning;
        rd.content += tail.content;
      }
      d.reasoning = std::move(rd.reasoning);
      d.content = std::move(rd.content);
    } else {
      d.content = e.text;
    }
    c.reasoning += d.reasoning;
    c.content += d.content;
    if (e.final) {
      c.done = true;
      c.final = e;
    }
    return d;
  }

  void handle_generate(const httplib::Request& req, httplib::Response& res, bool chat);
  bool stream_step(Job& job, httplib::DataSink& sink);
  bool collect(Job& job, std::chrono::milliseconds wait);  // true once every choice has ended
  std::pair<int, std::string> final_response(const Job& job);
  std::string chunk(const Job& job, json choices_json);
  void add_logprobs(Job& job, Choice& c, const StreamEvent& e, json* chat_delta);
  json usage(const Job& job);
  void observe(const StreamEvent& f);
};

Server::Server(ServerOptions opt) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(opt);
  Impl& I = *impl_;
  httplib::Server& h = I.http;
  const int threads = std::max(4, I.opt.http_threads);
  h.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  h.set_payload_max_length(I.opt.limits.max_body_bytes);
  h.set_read_timeout(30);
  h.set_write_timeout(30);
  h.set_keep_alive_timeout(5);

  h.set_pre_routing_handler([&I](const httplib::Request& req, httplib::Response& res) {
    if (I.opt.api_key.empty() || req.path == "/health" || req.path == "/" || req.path == "/index.html")
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0 && same_secret(auth.substr(7), I.opt.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    I.send_error(res, ApiError(401, "a valid API key is required: Authorization: Bearer <key>", "authentication_error", "",
                               "invalid_api_key"));
    I.count("auth", 401);
    return httplib::Server::HandlerResponse::Handled;
  });
  // Bodies the router or a size limit refused come without one: give them the API's error shape.
  h.set_error_handler([&I](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg = strfmt("%s %s: ", req.method.c_str(), req.path.c_str());
    std::string type = "invalid_request_error", code;
    if (res.status == 404) msg += "no such route", code = "not_found";
    else if (res.status == 413) msg += strfmt("the body is larger than the limit of %zu bytes", I.opt.limits.max_body_bytes), code = "body_too_large";
    else if (res.status == 405) msg += "method not allowed";
    else msg += "request refused";
    if (res.status >= 500) type = "server_error";
    I.send_error(res, ApiError(res.status, msg, type, "", code));
    I.count("other", res.status);
  });
  h.set_exception_handler([&I](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    I.send_error(res, ApiError(500, what, "server_error", "", "internal_error"));
    I.count("other", 500);
  });

  h.Get("/health", [&I](const httplib::Request&, httplib::Response& res) {
    if (I.backend.load()) {
      res.set_content(R"({"status":"ok"})", "application/json");
    } else {
      res.status = 503;
      res.set_content(R"({"status":"loading"})", "application/json");
    }
  });
  h.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kWebIndexHtml, "text/html; charset=utf-8");
  });
  h.Get("/index.html", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kWebIndexHtml, "text/html; charset=utf-8");
  });
  h.Get("/v1/models", [&I](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    const Backend* b = I.backend.load();
    for (const std::string& id : I.model_ids()) {
      data.push_back({{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "seek"}});
      if (b && !b->description.empty()) data.back()["description"] = b->description;  // seek's: what the model is
    }
    res.set_content(dump_json({{"object", "list"}, {"data", data}}), "application/json");
    I.count("models", 200);
  });
  h.Get(R"(/v1/models/([^/]+))", [&I](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    const auto ids = I.model_ids();
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
      I.send_error(res, ApiError(404, "The model `" + id + "` does not exist", "invalid_request_error", "model", "model_not_found"));
      return;
    }
    res.set_content(dump_json({{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "seek"}}), "application/json");
  });
  h.Get("/metrics", [&I](const httplib::Request&, httplib::Response& res) {
    std::string out;
    Backend* b = I.backend.load();
    render_metric(out, "seek_ready", "gauge", "1 once the model is loaded", b ? 1 : 0);
    if (b) {
      const SchedulerStats s = b->scheduler->stats();
      render_metric(out, "seek_requests_submitted_total", "counter", "Sequences submitted to the scheduler", double(s.submitted));
      render_metric(out, "seek_requests_refused_total", "counter", "Sequences refused (queue full or too large)", double(s.refused));
      render_metric(out, "seek_requests_finished_total", "counter", "Sequences finished (stop or length)", double(s.finished));
      render_metric(out, "seek_requests_cancelled_total", "counter", "Sequences cancelled (client gone)", double(s.cancelled));
      render_metric(out, "seek_requests_failed_total", "counter", "Sequences failed", double(s.failed));
      render_metric(out, "seek_prompt_tokens_total", "counter", "Prompt tokens of admitted sequences", double(s.prompt_tokens));
      render_metric(out, "seek_prompt_cache_hit_tokens_total", "counter", "Prompt tokens restored from the prefix cache", double(s.cached_tokens));
      render_metric(out, "seek_prompt_cache_miss_tokens_total", "counter", "Prompt tokens not in the prefix cache", double(s.prompt_tokens - s.cached_tokens));
      render_metric(out, "seek_prefill_tokens_total", "counter", "Prompt tokens run through the model", double(s.prefilled_tokens));
      render_metric(out, "seek_generated_tokens_total", "counter", "Tokens generated", double(s.generated_tokens));
      render_metric(out, "seek_queue_depth", "gauge", "Requests waiting for a slot", double(s.queued));
      render_metric(out, "seek_running_sequences", "gauge", "Sequences in the running batch", double(s.running));
      render_metric(out, "seek_kv_bytes", "gauge", "KV cache bytes of running sequences", double(s.kv_bytes));
      render_metric(out, "seek_engine_steps_total", "counter", "Batched forward steps", double(s.steps));
      render_metric(out, "seek_engine_step_sequences_total", "counter", "Sum over steps of the sequences in the batch (batch size = this / steps)", double(s.step_seqs));
      render_metric(out, "seek_engine_step_tokens_total", "counter", "Sum over steps of the token rows in the batch", double(s.step_rows));
      render_metric(out, "seek_batch_size", "gauge", "Sequences in the latest step's batch", double(s.last_step_seqs));
      render_metric(out, "seek_batch_tokens", "gauge", "Token rows in the latest step's batch (decode + prefill chunks)", double(s.last_step_rows));
      render_metric(out, "seek_engine_busy_seconds_total", "counter", "Seconds inside the model", s.busy_seconds);
      render_metric(out, "seek_decode_steps_total", "counter", "Decode steps of finished sequences (one per sequence per step)", double(s.drafts.steps));
      render_metric(out, "seek_decode_step_tokens_total", "counter", "Output tokens of those steps (tokens per step = this / seek_decode_steps_total)", double(s.drafts.tokens));
      render_metric(out, "seek_draft_tokens_total", "counter", "MTP draft tokens verified (speculative decoding), finished sequences", double(s.drafts.total_drafted()));
      render_metric(out, "seek_draft_accepted_tokens_total", "counter", "MTP draft tokens accepted (acceptance = this / seek_draft_tokens_total)", double(s.drafts.total_accepted()));
      if (s.drafts.drafted[0] > 0)
        render_metric(out, "seek_draft_first_acceptance", "gauge", "Share of first drafts accepted, finished sequences",
                      double(s.drafts.accepted[0]) / double(s.drafts.drafted[0]));
      if (b->pc) {
        const PrefixCacheStats p = b->pc->stats();
        render_metric(out, "seek_prefix_cache_ram_bytes", "gauge", "RAM tier bytes", double(p.ram_bytes));
        render_metric(out, "seek_prefix_cache_ram_blocks", "gauge", "RAM tier blocks", double(p.ram_blocks));
        render_metric(out, "seek_prefix_cache_disk_bytes", "gauge", "Disk tier bytes", double(p.disk_bytes));
        render_metric(out, "seek_prefix_cache_disk_blocks", "gauge", "Disk tier blocks", double(p.disk_blocks));
        render_metric(out, "seek_prefix_cache_ram_block_hits_total", "counter", "Blocks found in RAM", double(p.ram_block_hits));
        render_metric(out, "seek_prefix_cache_disk_block_hits_total", "counter", "Blocks read from disk", double(p.disk_block_hits));
        render_metric(out, "seek_prefix_cache_corrupt_files_total", "counter", "Disk blocks refused (bad size, header or checksum)", double(p.corrupt_files));
        render_metric(out, "seek_prefix_cache_evictions_total", "counter", "RAM tier evictions", double(p.evictions));
      }
    }
    render_metric(out, "seek_streams_open", "gauge", "Streaming responses in progress", double(I.streams_open.load()));
    I.request_seconds.render(out, "seek_request_seconds", "Time from submission to the last token");
    I.first_token_seconds.render(out, "seek_time_to_first_token_seconds", "Time from submission to the first token");
    I.queue_seconds.render(out, "seek_queue_seconds", "Time waiting for a batch slot");
    {
      std::lock_guard<std::mutex> lk(I.status_mu);
      out += "# HELP seek_http_responses_total HTTP responses by route and status\n# TYPE seek_http_responses_total counter\n";
      for (const auto& [k, v] : I.responses) out += "seek_http_responses_total{route=\"" + k + "\"} " + std::to_string(v) + "\n";
    }
    res.set_content(out, "text/plain; version=0.0.4");
  });
  h.Post("/v1/chat/completions", [&I](const httplib::Request& req, httplib::Response& res) {
    try {
      I.handle_generate(req, res, true);
    } catch (const ApiError& e) {
      I.send_error(res, e);
      I.count("chat", e.status);
    }
  });
  h.Post("/v1/completions", [&I](const httplib::Request& req, httplib::Response& res) {
    try {
      I.handle_generate(req, res, false);
    } catch (const ApiError& e) {
      I.send_error(res, e);
      I.count("completions", e.status);
    }
  });
}

Server::~Server() { stop(); }

void Server::bind() {
  Impl& I = *impl_;
  if (I.opt.port == 0) {
    const int p = I.http.bind_to_any_port(I.opt.host);
    if (p <= 0) throw Error("cannot listen on " + I.opt.host);
    I.opt.port = p;
  } else if (!I.http.bind_to_port(I.opt.host, I.opt.port)) {
    throw Error(strfmt("cannot listen on %s:%d (in use, or not an address of this machine)", I.opt.host.c_str(), I.opt.port));
  }
  I.http.raise_backlog();
}

int Server::port() const { return impl_->opt.port; }
void Server::listen() { impl_->http.listen_after_bind(); }
void Server::stop() {
  if (impl_->http.is_running()) impl_->http.stop();
}

void Server::attach(Model& model, const Tokenizer& tok, PrefixCache* pc, Scheduler& scheduler, uint64_t fingerprint,
                    GenerationDefaults defaults, std::string describe) {
  Impl& I = *impl_;
  I.storage.limits = I.opt.limits;
  I.storage.limits.sampling = defaults.sampling;
  if (defaults.max_new_tokens)
    I.storage.limits.default_max_tokens = std::min(*defaults.max_new_tokens, I.storage.limits.max_tokens);
  I.storage.eos_ids = std::move(defaults.eos_ids);  // an id past the vocabulary is never sampled
  I.storage.model = &model;
  I.storage.tok = &tok;
  I.storage.pc = pc;
  I.storage.scheduler = &scheduler;
  try {
    I.storage.style = detect_chat_style(tok);
  } catch (const Error&) {
    I.storage.style.reset();  // no chat format: /v1/chat/completions answers 400
  }
  I.storage.description = std::move(describe);
  I.storage.fingerprint = strfmt("fp_%08llx", (unsigned long long)(fingerprint & 0xffffffffull));
  I.backend.store(&I.storage);
}

void Server::Impl::handle_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  Backend& be = *ready();
  const ApiLimits& lim = be.limits;
  ApiRequest r = chat ? parse_chat_request(req.body, lim) : parse_completion_request(req.body, lim);
  bool reasoner = false;
  if (r.model == "deepseek-reasoner") reasoner = true;
  else if (r.model != opt.model_name && r.model != "deepseek-chat")
    throw ApiError(404, "The model `" + r.model + "` does not exist; GET /v1/models lists the served ones",
                   "invalid_request_error", "model", "model_not_found");
  const bool think = chat && r.thinking.value_or(reasoner || opt.think);
  const Tokenizer& tok = *be.tok;
  const Config& cfg = be.model->config();

  std::vector<int32_t> ids;
  try {
    if (chat) {
      if (!be.style) throw ApiError(400, "this model's tokenizer has no chat format; use /v1/completions");
      ids = tok.encode(render_chat(*be.style, r.messages, ChatOptions{true, think}), false);
    } else if (r.prompt_is_ids) {
      ids = r.prompt_ids;
      for (int32_t id : ids)
        if (id >= tok.vocab_size()) throw ApiError(400, strfmt("prompt: token id %d is outside the vocabulary", id), "invalid_request_error", "prompt");
    } else {
      ids = tok.encode(r.prompt, tok.bos_id() >= 0);
    }
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "invalid_request_error", chat ? "messages" : "prompt");
  }
  if (ids.empty()) throw ApiError(400, "prompt: empty", "invalid_request_error", "prompt");
  const int64_t ctx = cfg.max_position_embeddings;
  const int64_t P = int64_t(ids.size());
  const int64_t max_prompt = std::min(opt.limits.max_prompt_tokens, ctx - 1);
  if (P > max_prompt)
    throw ApiError(413, strfmt("the prompt has %lld tokens; the limit is %lld", (long long)P, (long long)max_prompt),
                   "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded");
  const int64_t room = ctx - P;
  const int64_t max_new = r.max_tokens ? *r.max_tokens : std::min(lim.default_max_tokens, room);
  if (max_new > room)
    throw ApiError(400, strfmt("this model's context is %lld tokens; the prompt has %lld and max_tokens asks for %lld", (long long)ctx,
                               (long long)P, (long long)max_new), "invalid_request_error", "max_tokens", "context_length_exceeded");

  const uint64_t seed = r.seed_given ? r.sampling.seed : random_seed();
  std::vector<Choice> choices(size_t(r.n));
  for (int64_t i = 0; i < r.n; ++i) {
    GenerationRequest er;
    er.prompt = ids;
    er.sampling = r.sampling;
    er.sampling.seed = seed + uint64_t(i);
    er.stop.max_new_tokens = max_new;
    er.stop.stop_strings = r.stop;
    er.stop.add_stop_ids({tok.eos_id()});
    er.stop.add_stop_ids(be.eos_ids);
    if (chat) er.stop.add_stop_ids(chat_stop_ids(*be.style, tok));  // the format's end-of-turn tokens too
    er.top_logprobs = r.top_logprobs;
    er.speculative = default_speculative(cfg);
    if (opt.draft_tokens >= 0) er.speculative.draft_tokens = opt.draft_tokens;
    if (opt.min_draft_prob >= 0) er.speculative.min_draft_prob = opt.min_draft_prob;
    if (r.draft_tokens) er.speculative.draft_tokens = *r.draft_tokens;
    if (r.min_draft_prob) er.speculative.min_draft_prob = *r.min_draft_prob;
    Scheduler::Submitted sub;
    try {
      sub = be.scheduler->submit(std::move(er));
    } catch (const Error& e) {
      for (auto& c : choices)
        if (c.stream) c.stream->cancel();
      throw ApiError(400, e.what());
    }
    if (!sub.stream) {
      for (auto& c : choices)
        if (c.stream) c.stream->cancel();
      if (sub.refusal == Scheduler::Refusal::QueueFull) throw ApiError(429, sub.message, "rate_limit_error", "", "queue_full");
      throw ApiError(413, sub.message, "invalid_request_error", "max_tokens", "context_length_exceeded");
    }
    Choice& c = choices[size_t(i)];
    c.stream = sub.stream;
    if (chat) {
      const ChatTokens& ct = chat_tokens(*be.style);
      c.rs = std::make_unique<ReasoningStream>(think, std::string(ct.think_open), std::string(ct.think_close));
    }
  }

  auto job = std::make_shared<Job>();
  job->chat = chat;
  job->want_logprobs = r.top_logprobs >= 0;
  job->include_usage = r.include_usage;
  job->tok = &tok;
  job->prompt_tokens = P;
  job->id = (chat ? "chatcmpl-" : "cmpl-") + random_hex(24);
  job->created = int64_t(std::time(nullptr));
  job->model = r.model;
  job->fingerprint = be.fingerprint;
  job->route = chat ? "chat" : "completions";
  job->think = think;
  job->choices = std::move(choices);

  if (!r.stream) {
    // Most answers are ready within a second: wait here, and reply with the right status.
    const auto deadline = Clock::now() + std::chrono::seconds(1);
    while (!collect(*job, std::chrono::milliseconds(50)) && Clock::now() < deadline) {
    }
    if (collect(*job, std::chrono::milliseconds(0))) {
      const auto [status, body] = final_response(*job);
      res.status = status;
      res.set_content(body, "application/json");
      count(job->route, status);
      return;
    }
    // A longer one is sent chunked, with a space (JSON allows leading whitespace) every half second
    // until it is ready: a failed write tells that the client left, and its sequences are cancelled.
    res.set_chunked_content_provider(
        "application/json",
        [this, job](size_t, httplib::DataSink& sink) {
          if (collect(*job, std::chrono::milliseconds(100))) {
            const auto [status, body] = final_response(*job);
            if (!sink.write(body.data(), body.size())) return false;
            sink.done();
            count(job->route, status);
            return true;
          }
          if (Clock::now() - job->last_write > std::chrono::milliseconds(500)) {
            job->last_write = Clock::now();
            if (!sink.write(" ", 1)) {
              for (auto& c : job->choices) c.stream->cancel();
              return false;
            }
          }
          return true;
        },
        [job](bool) {
          for (auto& c : job->choices)
            if (!c.done) c.stream->cancel();
        });
    return;
  }

  // Streaming: server-sent events from a chunked provider that this connection's thread runs.
  streams_open++;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream", [this, job](size_t, httplib::DataSink& sink) { return stream_step(*job, sink); },
      [this, job](bool) {
        for (auto& c : job->choices)
          if (!c.done) c.stream->cancel();
        streams_open--;
      });
}

bool Server::Impl::collect(Job& job, std::chrono::milliseconds wait) {
  std::vector<StreamEvent> evs;
  bool all = true;
  for (auto& c : job.choices) {
    if (c.done) continue;
    evs.clear();
    c.stream->next(evs, wait);
    for (const StreamEvent& e : evs) {
      add_logprobs(job, c, e, nullptr);
      apply(c, job.chat, e);
      if (e.final) observe(e);
    }
    if (!c.done) all = false;
  }
  return all;
}

std::pair<int, std::string> Server::Impl::final_response(const Job& job) {
  for (const Choice& c : job.choices)
    if (c.final.finish_reason == "error" || c.final.finish_reason == "cancelled") {
      ApiError e(500, "generation failed: " + (c.final.error.empty() ? c.final.finish_reason : c.final.error), "server_error", "",
                 "generation_failed");
      return {500, dump_json(error_json(e))};
    }
  json out_choices = json::array();
  for (size_t i = 0; i < job.choices.size(); ++i) {
    const Choice& c = job.choices[i];
    if (job.chat) {
      json msg = {{"role", "assistant"}, {"content", c.content}};
      if (job.think || !c.reasoning.empty()) msg["reasoning_content"] = c.reasoning;
      out_choices.push_back({{"index", i}, {"message", msg},
                             {"logprobs", job.want_logprobs ? json{{"content", c.logprobs}} : json(nullptr)},
                             {"finish_reason", finish_reason(c.final)}});
    } else {
      json lp = nullptr;
      if (job.want_logprobs) lp = {{"tokens", c.lp_tokens}, {"token_logprobs", c.lp_values}, {"top_logprobs", c.lp_top}};
      out_choices.push_back({{"index", i}, {"text", c.content}, {"logprobs", lp}, {"finish_reason", finish_reason(c.final)}});
    }
  }
  json body = {{"id", job.id}, {"object", job.chat ? "chat.completion" : "text_completion"}, {"created", job.created},
               {"model", job.model}, {"system_fingerprint", job.fingerprint}, {"choices", out_choices}, {"usage", usage(job)}};
  return {200, dump_json(body)};
}

std::string Server::Impl::chunk(const Job& job, json choices_json) {
  json j = {{"id", job.id}, {"object", job.chat ? "chat.completion.chunk" : "text_completion"}, {"created", job.created},
            {"model", job.model}, {"system_fingerprint", job.fingerprint}, {"choices", std::move(choices_json)}};
  if (job.include_usage) j["usage"] = nullptr;
  return "data: " + dump_json(j) + "\n\n";
}

bool Server::Impl::stream_step(Job& job, httplib::DataSink& sink) {
  std::string out;
  const bool chat = job.chat;
  if (!job.started) {
    job.started = true;
    if (chat) {
      json cs = json::array();
      for (size_t i = 0; i < job.choices.size(); ++i)
        cs.push_back({{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}});
      out += chunk(job, cs);
    }
  }
  bool all_done = true;
  std::vector<StreamEvent> evs;
  const auto wait = std::chrono::milliseconds(job.choices.size() == 1 ? 100 : 5);
  for (size_t i = 0; i < job.choices.size(); ++i) {
    Choice& c = job.choices[i];
    if (c.done) continue;
    evs.clear();
    c.stream->next(evs, wait);
    for (const StreamEvent& e : evs) {
      json lp_delta = json::array();
      add_logprobs(job, c, e, &lp_delta);
      Delta d = apply(c, chat, e);
      json lp = nullptr;
      if (job.want_logprobs && e.token >= 0) {
        if (chat) lp = {{"content", lp_delta}};
        else lp = {{"tokens", {c.lp_tokens.back()}}, {"token_logprobs", {c.lp_values.back()}}, {"top_logprobs", {c.lp_top.back()}}};
      }
      if (chat) {
        if (!d.reasoning.empty() || !d.content.empty() || !lp.is_null()) {
          json delta = json::object();
          if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
          if (!d.content.empty() || d.reasoning.empty()) delta["content"] = d.content;
          out += chunk(job, json::array({{{"index", i}, {"delta", delta}, {"logprobs", lp}, {"finish_reason", nullptr}}}));
        }
      } else if (!d.content.empty() || !lp.is_null()) {
        out += chunk(job, json::array({{{"index", i}, {"text", d.content}, {"logprobs", lp}, {"finish_reason", nullptr}}}));
      }
      if (e.final) {
        if (e.finish_reason == "error" || e.finish_reason == "cancelled") {
          ApiError err(500, "generation failed: " + (e.error.empty() ? e.finish_reason : e.error), "server_error", "",
                       "generation_failed");
          out += "data: " + dump_json(error_json(err)) + "\n\n";
        } else if (chat) {
          out += chunk(job, json::array({{{"index", i}, {"delta", json::object()}, {"logprobs", nullptr}, {"finish_reason", finish_reason(e)}}}));
        } else {
          out += chunk(job, json::array({{{"index", i}, {"text", ""}, {"logprobs", nullptr}, {"finish_reason", finish_reason(e)}}}));
        }
        observe(e);
      }
    }
    if (!c.done) all_done = false;
  }
  if (all_done && !job.finished) {
    job.finished = true;
    if (job.include_usage) {
      json j = {{"id", job.id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", job.created},
                {"model", job.model}, {"system_fingerprint", job.fingerprint}, {"choices", json::array()}, {"usage", usage(job)}};
      out += "data: " + dump_json(j) + "\n\n";
    }
    out += "data: [DONE]\n\n";
  }
  // A comment now and then: the only way to notice a client that left while nothing was produced.
  if (out.empty() && Clock::now() - job.last_write > std::chrono::seconds(2)) out = ": keep-alive\n\n";
  if (!out.empty()) {
    job.last_write = Clock::now();
    if (!sink.write(out.data(), out.size())) {
      for (auto& c : job.choices) c.stream->cancel();
      return false;
    }
  }
  if (job.finished) {
    sink.done();
    count(job.route, 200);
  }
  return true;
}

void Server::Impl::add_logprobs(Job& job, Choice& c, const StreamEvent& e, json* chat_delta) {
  if (!job.want_logprobs || e.token < 0) return;
  const Tokenizer& tok = *job.tok;
  if (job.chat) {
    json entry = token_logprob(tok, e.token, e.logprob);
    json top = json::array();
    for (auto& [tid, lp] : e.top) top.push_back(token_logprob(tok, tid, lp));
    entry["top_logprobs"] = top;
    c.logprobs.push_back(entry);
    if (chat_delta) chat_delta->push_back(entry);
  } else {
    c.lp_tokens.push_back(std::string(tok.bytes(e.token)));
    c.lp_values.push_back(e.logprob);
    json top = json::object();
    for (auto& [tid, lp] : e.top) top[std::string(tok.bytes(tid))] = lp;
    c.lp_top.push_back(top);
  }
}

json Server::Impl::usage(const Job& job) {
  int64_t completion = 0, reasoning = 0;
  for (auto& c : job.choices) completion += c.tokens, reasoning += c.reasoning_tokens;
  return usage_json(job.prompt_tokens, job.choices[0].final.cached_tokens, completion, reasoning);
}

void Server::Impl::observe(const StreamEvent& f) {
  request_seconds.observe(f.total_seconds);
  first_token_seconds.observe(f.first_token_seconds);
  queue_seconds.observe(f.queue_seconds);
}

}  // namespace seek
