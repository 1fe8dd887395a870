// The server over real HTTP on loopback (in process, so the sanitizer build covers it): responses and
// usage, streaming equal to non-streaming, cache hits, every error status, a client that disconnects
// mid-stream, many clients at once. The official-client tests are in tests/server (node).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <thread>

#include "engine/prefix_cache.h"
#include "engine/scheduler.h"
#include "model/bpe_trainer.h"
#include "server/server.h"
#include "test_util.h"

using namespace seek;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct Served {
  test::TempDir dir;
  std::unique_ptr<Model> model;
  Tokenizer tok;
  std::unique_ptr<PrefixCache> pc;
  std::unique_ptr<Scheduler> engine;
  std::unique_ptr<Server> server;
  std::thread thread;

  explicit Served(SchedulerOptions eo = {}, ServerOptions so = {}, bool attach = true) {
    signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> corpus(20, "the quick brown fox jumps over the lazy dog; 12 + 34 = 46\n");
    write_tokenizer_dir(dir.path.string(), train_bpe(corpus, BpeTrainOptions{300, 2}));
    tok = Tokenizer::load(dir.path.string());
    auto cfg = test::tiny_config("deepseek_v3");
    cfg["vocab_size"] = tok.vocab_size();
    write_random_checkpoint(dir.path.string(), cfg, {DType::F32, 5, 1});
    model = Model::load(dir.path.string());
    PrefixCacheOptions po;
    po.salt = model_fingerprint(dir.path.string());
    pc = std::make_unique<PrefixCache>(model->config(), MlaForm::Absorbed, po);
    engine = std::make_unique<Scheduler>(*model, &tok, pc.get(), eo);
    so.port = 0;
    so.model_name = "tiny";
    if (so.limits.max_body_bytes == ApiLimits{}.max_body_bytes) so.limits.max_body_bytes = 64 << 10;
    server = std::make_unique<Server>(so);
    server->bind();
    thread = std::thread([this] { server->listen(); });
    if (attach) do_attach();
  }
  void do_attach() { server->attach(*model, tok, pc.get(), *engine, 1); }
  ~Served() {
    server->stop();
    thread.join();
    server.reset();
    engine.reset();
  }
  httplib::Client client(const std::string& key = {}) {
    httplib::Client c("127.0.0.1", server->port());
    c.set_read_timeout(30);
    if (!key.empty()) c.set_bearer_token_auth(key);
    return c;
  }
};

std::string chat_body(json extra = json::object()) {
  json j = {{"model", "tiny"},
            {"messages", {{{"role", "system"}, {"content", "You answer about the quick brown fox."}},
                          {{"role", "user"}, {"content", "what does the quick brown fox jump over?"}}}},
            {"temperature", 0},
            {"max_tokens", 12}};
  j.update(extra);
  return j.dump();
}

// data: payloads of an SSE body, in order.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    out.push_back(body.substr(at + 6, end - at - 6));
    at = end;
  }
  return out;
}

}  // namespace

TEST(ServerHttp, ChatCompletionUsageAndCacheHit) {
  Served s;
  auto c = s.client();
  auto r1 = c.Post("/v1/chat/completions", chat_body(), "application/json");
  ASSERT_TRUE(r1);
  ASSERT_EQ(r1->status, 200) << r1->body;
  json a = json::parse(r1->body);
  EXPECT_EQ(a["object"], "chat.completion");
  EXPECT_EQ(a["model"], "tiny");
  EXPECT_EQ(a["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(a["choices"][0]["message"]["content"].is_string());
  const json& u = a["usage"];
  EXPECT_GT(u["prompt_tokens"].get<int>(), 16);
  EXPECT_EQ(u["prompt_cache_hit_tokens"], 0);
  EXPECT_EQ(u["prompt_cache_miss_tokens"], u["prompt_tokens"]);
  EXPECT_EQ(u["total_tokens"].get<int>(), u["prompt_tokens"].get<int>() + u["completion_tokens"].get<int>());
  EXPECT_EQ(u["completion_tokens_details"]["reasoning_tokens"], 0);
  // The same request again: its prompt hits the cache, the greedy answer is the same.
  auto r2 = c.Post("/v1/chat/completions", chat_body(), "application/json");
  ASSERT_TRUE(r2);
  json b = json::parse(r2->body);
  EXPECT_GT(b["usage"]["prompt_cache_hit_tokens"].get<int>(), 0);
  EXPECT_EQ(b["usage"]["prompt_cache_hit_tokens"], b["usage"]["prompt_tokens_details"]["cached_tokens"]);
  EXPECT_EQ(b["usage"]["prompt_cache_hit_tokens"].get<int>() + b["usage"]["prompt_cache_miss_tokens"].get<int>(),
            b["usage"]["prompt_tokens"].get<int>());
  EXPECT_EQ(b["choices"][0]["message"]["content"], a["choices"][0]["message"]["content"]);
  // Reasoning on: reasoning_content is there, and its tokens are counted within the completion's.
  auto r3 = c.Post("/v1/chat/completions", chat_body({{"thinking", {{"type", "enabled"}}}}), "application/json");
  json t = json::parse(r3->body);
  EXPECT_TRUE(t["choices"][0]["message"]["reasoning_content"].is_string());
  EXPECT_LE(t["usage"]["completion_tokens_details"]["reasoning_tokens"].get<int>(), t["usage"]["completion_tokens"].get<int>());
  EXPECT_GT(t["usage"]["completion_tokens_details"]["reasoning_tokens"].get<int>(), 0);
  // n = 3 choices, each with its own index; completions endpoint.
  auto r4 = c.Post("/v1/chat/completions", chat_body({{"n", 3}, {"temperature", 1.0}, {"seed", 9}}), "application/json");
  EXPECT_EQ(json::parse(r4->body)["choices"].size(), 3u);
  auto r5 = c.Post("/v1/completions", R"({"model":"tiny","prompt":"the quick","max_tokens":5,"logprobs":2})", "application/json");
  ASSERT_EQ(r5->status, 200) << r5->body;
  json p = json::parse(r5->body);
  EXPECT_EQ(p["object"], "text_completion");
  EXPECT_EQ(p["choices"][0]["logprobs"]["token_logprobs"].size(), p["usage"]["completion_tokens"].get<size_t>());
}

TEST(ServerHttp, StreamingEqualsNonStreaming) {
  Served s;
  auto c = s.client();
  json whole = json::parse(c.Post("/v1/chat/completions", chat_body({{"max_tokens", 20}}), "application/json")->body);
  auto r = c.Post("/v1/chat/completions",
                  chat_body({{"max_tokens", 20}, {"stream", true}, {"stream_options", {{"include_usage", true}}}}),
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  std::vector<std::string> events = sse_data(r->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string content;
  std::string finish;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    json e = json::parse(events[i]);
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    EXPECT_TRUE(e["usage"].is_null());
    const json& ch = e["choices"][0];
    if (ch["delta"].contains("content")) content += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  json last = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"]["completion_tokens"], whole["usage"]["completion_tokens"]);
  EXPECT_EQ(content, whole["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, whole["choices"][0]["finish_reason"]);
}

TEST(ServerHttp, ErrorsHaveTheirStatusAndOpenAIsShape) {
  ServerOptions so;
  so.limits.max_prompt_tokens = 200;
  Served s({}, so);
  auto c = s.client();
  auto expect = [&](const httplib::Result& r, int status, const std::string& param = "") {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    json j = json::parse(r->body);
    ASSERT_TRUE(j["error"].is_object()) << r->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    if (!param.empty()) {
      EXPECT_EQ(j["error"]["param"], param) << r->body;
    }
  };
  expect(c.Post("/v1/chat/completions", "{not json", "application/json"), 400);
  expect(c.Post("/v1/chat/completions", chat_body({{"temperature", "warm"}}), "application/json"), 400, "temperature");
  expect(c.Post("/v1/chat/completions", chat_body({{"model", "gpt-4"}}), "application/json"), 404, "model");
  expect(c.Get("/v1/nothing"), 404);
  expect(c.Post("/v1/chat/completions", std::string(100 << 10, ' '), "application/json"), 413);
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "fox ";
  json big = {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", long_text}}}}};
  expect(c.Post("/v1/chat/completions", big.dump(), "application/json"), 413, "messages");
  expect(c.Post("/v1/chat/completions", chat_body({{"max_tokens", 60000}}), "application/json"), 400, "max_tokens");
  expect(c.Post("/v1/chat/completions", chat_body({{"messages", {{{"role", "assistant"}, {"content", "x"}, {"reasoning_content", "y"}}}}}),
                "application/json"),
         400);
  expect(c.Post("/v1/completions", R"({"model":"tiny","prompt":[1, 99999]})", "application/json"), 400, "prompt");
  // The server is still up and answering.
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_EQ(c.Post("/v1/chat/completions", chat_body(), "application/json")->status, 200);
}

TEST(ServerHttp, LoadingKeyAndQueueLimits) {
  {  // 503 until the model is attached; /health says so too
    Served s({}, {}, false);
    auto c = s.client();
    EXPECT_EQ(c.Get("/health")->status, 503);
    EXPECT_EQ(c.Post("/v1/chat/completions", chat_body(), "application/json")->status, 503);
    s.do_attach();
    EXPECT_EQ(c.Get("/health")->status, 200);
  }
  {  // --api-key: 401 without it (but /health and the page), 200 with it
    ServerOptions so;
    so.api_key = "sekrit";
    Served s({}, so);
    auto anon = s.client(), wrong = s.client("nope"), ok = s.client("sekrit");
    EXPECT_EQ(anon.Post("/v1/chat/completions", chat_body(), "application/json")->status, 401);
    EXPECT_EQ(wrong.Get("/v1/models")->status, 401);
    EXPECT_EQ(anon.Get("/metrics")->status, 401);
    EXPECT_EQ(anon.Get("/health")->status, 200);
    EXPECT_EQ(anon.Get("/")->status, 200);
    EXPECT_EQ(ok.Get("/v1/models")->status, 200);
    EXPECT_EQ(ok.Post("/v1/chat/completions", chat_body(), "application/json")->status, 200);
  }
  {  // no room in the queue: 429
    SchedulerOptions eo;
    eo.max_queue = 0;
    Served s(eo);
    auto r = s.client().Post("/v1/chat/completions", chat_body(), "application/json");
    EXPECT_EQ(r->status, 429);
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
  }
}

TEST(ServerHttp, AClientThatDisconnectsMidStreamIsCancelled) {
  SchedulerOptions eo;
  eo.step_delay_ms = 8;  // 180 tokens take over the 1 s a non-streaming reply waits before chunking
  eo.draft_max_seqs = 0;  // one token a step: no MTP drafts (they would give ~2 a step)
  Served s(eo);
  {
    auto c = s.client();
    int chunks = 0;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = chat_body({{"max_tokens", 150}, {"stream", true}, {"temperature", 1}});
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };  // hang up
    c.send(req);
    EXPECT_EQ(chunks, 3);
  }
  int64_t cancelled = 0;
  for (int i = 0; i < 400 && cancelled == 0; ++i) {
    std::this_thread::sleep_for(10ms);
    cancelled = s.engine->stats().cancelled;
  }
  EXPECT_EQ(cancelled, 1);
  EXPECT_LT(s.engine->stats().generated_tokens, 150);
  EXPECT_EQ(s.client().Get("/health")->status, 200);
  // A non-streaming client that gives up: noticed by the spaces written while it waits.
  {
    auto c = s.client();
    c.set_read_timeout(0, 300000);
    auto r = c.Post("/v1/chat/completions", chat_body({{"max_tokens", 180}, {"temperature", 1}, {"logit_bias", {{"1", -100}}}}), "application/json");
    EXPECT_FALSE(r);
  }
  for (int i = 0; i < 400 && cancelled < 2; ++i) {
    std::this_thread::sleep_for(10ms);
    cancelled = s.engine->stats().cancelled;
  }
  EXPECT_EQ(cancelled, 2);
  EXPECT_LT(s.engine->stats().generated_tokens, 150 + 180);
  // A long non-streaming answer that the client waits for arrives whole, after the spaces.
  auto r = s.client().Post("/v1/chat/completions", chat_body({{"max_tokens", 180}, {"temperature", 1}, {"logit_bias", {{"1", -100}}}}), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body[0], ' ');
  EXPECT_EQ(nlohmann::json::parse(r->body)["object"], "chat.completion");
}

TEST(ServerHttp, ManyClientsAtOnce) {
  SchedulerOptions eo;
  eo.max_seqs = 8;
  Served s(eo);
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 24; ++i)
    ts.emplace_back([&, i] {
      const auto t0 = std::chrono::steady_clock::now();
      auto c = s.client();
      auto r = c.Post("/v1/chat/completions", chat_body({{"stream", i % 2 == 0}, {"max_tokens", 8}, {"seed", i}, {"temperature", 0.7}}),
                      "application/json");
      if (r && r->status == 200) ok++;
      else ADD_FAILURE() << "client " << i << ": " << (r ? std::to_string(r->status) + " " + r->body : httplib::to_string(r.error()))
                         << " after " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s";
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 24);
  auto m = s.client().Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("seek_requests_finished_total 24"), std::string::npos) << m->body.substr(0, 600);
  EXPECT_NE(m->body.find("seek_request_seconds_count 24"), std::string::npos);
  // batching happened: more sequences than steps
  const SchedulerStats st = s.engine->stats();
  EXPECT_GT(st.step_seqs, st.steps);
}
