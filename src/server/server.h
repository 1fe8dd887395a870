// server.h — `seek serve`'s HTTP side: an OpenAI/DeepSeek-compatible API over cpp-httplib.
//
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics
// (Prometheus text), GET / (the chat page, built into the binary).
// HTTP threads only parse and validate (server/api.h), tokenize, submit to the Scheduler
// (engine/scheduler.h) and stream its events back; the scheduler thread alone runs the model. A client
// that goes away mid-stream is noticed at the next write (tokens or a keep-alive comment every 2 s)
// and its sequence is cancelled, freeing its batch slot.
//
// Status codes: 400 malformed JSON or invalid parameters, 401 without the key when an API key is set
// (every route but /health and the static page, which holds no data and asks for the key itself),
// 404 unknown route or model, 413 body or prompt over the limits, 429 queue full, 503 until attach().
// Every error body is {"error": {"message", "type", "param", "code"}}.
#pragma once
#include <memory>
#include <string>

#include "engine/generation_config.h"
#include "engine/prefix_cache.h"
#include "engine/scheduler.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "server/api.h"

namespace seek {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see Server::port())
  std::string api_key;
  ApiLimits limits;
  int http_threads = 64;   // concurrent connections being served
  std::string model_name;  // the id in /v1/models; "deepseek-chat" and "deepseek-reasoner" are aliases
  bool think = false;      // reasoning on by default (R1's "<think>\n" prefill); per request: "thinking"
  // Speculative decoding's defaults (engine/decode.h), per request: "draft_tokens", "min_draft_prob".
  // -1: the model's (default_speculative: on for a model with an MTP module).
  int64_t draft_tokens = -1;
  float min_draft_prob = -1;
};

class Server {
 public:
  explicit Server(ServerOptions opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port; throws Error when it cannot.
  void bind();
  int port() const;
  // Serves until stop() (call bind() first). Blocks the calling thread.
  void listen();
  void stop();
  // The model is ready: the API answers from now on (503 before). The objects must outlive the server.
  // `fingerprint` (model_fingerprint) names the model in system_fingerprint.
  // `defaults`: the model's generation_config.json, a request's defaults; `describe`: what the model is
  // in one line (model/model_card.h), in /v1/models and on the chat page.
  void attach(Model& model, const Tokenizer& tokenizer, PrefixCache* prefix_cache, Scheduler& scheduler, uint64_t fingerprint,
              GenerationDefaults defaults = {}, std::string describe = {});

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace seek
