// generate_cmd.cpp — `seek generate` (stream a completion, or n of them in one batch) and `seek chat`
// (an interactive loop with history, /reset, reasoning shown dimmed apart from the answer, and Ctrl-C
// that stops the current answer without leaving).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "model/gguf_model.h"
#include "engine/generation_config.h"
#include "engine/generator.h"
#include "engine/reasoning.h"
#include "model/chat_template.h"
#include "model/model.h"
#include "model/model_card.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace seek {

namespace {

struct GenFlags {
  std::string model, tokenizer, prompt, system;
  int64_t max_tokens = 256;
  int64_t n = 1;
  std::vector<std::string> stops;
  bool chat = false, think = false, raw = false;
  bool single_turn = false, multi_turn = false;  // chat: forget or keep earlier turns (default: by chat style)
  SamplingParams sp;
  int64_t draft = -1;  // MTP drafts per step; -1: the model's default (default_speculative)
  float draft_min_prob = -1;
  std::vector<int32_t> eos_ids;  // the model's generation_config.json's, besides the tokenizer's
  CLI::App* cmd = nullptr;       // the command the flags were parsed for (which were given)
};

void add_sampling_flags(CLI::App* c, GenFlags& f) {
  f.cmd = c;
  c->add_option("-m,--model", f.model, "model directory (default: the shipped models/seek-tiny)");
  c->add_option("--tokenizer", f.tokenizer, "tokenizer directory (default: the model directory)");
  c->add_option("--temperature", f.sp.temperature, "0 = greedy")->capture_default_str();
  c->add_option("--top-k", f.sp.top_k, "0 = off")->capture_default_str();
  c->add_option("--top-p", f.sp.top_p, "1 = off")->capture_default_str();
  c->add_option("--min-p", f.sp.min_p, "0 = off")->capture_default_str();
  c->add_option("--repetition-penalty", f.sp.repetition_penalty, "1 = off")->capture_default_str();
  c->add_option("--frequency-penalty", f.sp.frequency_penalty)->capture_default_str();
  c->add_option("--presence-penalty", f.sp.presence_penalty)->capture_default_str();
  c->add_option("--seed", f.sp.seed)->capture_default_str();
  c->add_option("--max-tokens", f.max_tokens, "most new tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  c->add_option("--stop", f.stops, "stop string (repeatable)");
  c->add_option("--system", f.system, "system prompt (chat format)");
  c->add_flag("--think", f.think, "prefill <think> after the assistant tag (R1 style)");
  add_draft_option(c, f.draft, "default: on for models with an MTP module");
  c->add_option("--draft-min-prob", f.draft_min_prob,
                "stop drafting at a draft the MTP module gives less than this probability")
      ->check(CLI::Range(0.0, 1.0));
}

SpeculativeParams speculative_for(const GenFlags& f, const Config& c) {
  SpeculativeParams s = default_speculative(c);
  if (f.draft >= 0) s.draft_tokens = f.draft;
  if (f.draft_min_prob >= 0) s.min_draft_prob = f.draft_min_prob;
  return s;
}

// "drafts: 2 a step, 87% of first drafts accepted, 1.9 tokens a step" (empty without drafts).
std::string draft_summary(const std::vector<GenerationOutput>& out) {
  DraftStats st;
  for (const GenerationOutput& o : out) st.add(o.drafts);
  if (st.total_drafted() == 0) return "";
  std::string s = "; drafts accepted";
  for (int64_t i = 0; i < SpeculativeParams::kMaxDraft && st.drafted[i] > 0; ++i)
    s += strfmt(" %s%.0f%%", i ? "/ " : "", 100.0 * double(st.accepted[i]) / double(st.drafted[i]));
  return s + strfmt(" by position, %.2f tokens a step", double(st.tokens) / double(std::max<int64_t>(1, st.steps)));
}

// The flags with the model's generation_config.json in place of each sampling flag not given.
GenFlags with_model_defaults(GenFlags f, const GenerationDefaults& d) {
  auto unset = [&](const char* flag) { return !f.cmd || f.cmd->count(flag) == 0; };
  if (unset("--temperature")) f.sp.temperature = d.sampling.temperature;
  if (unset("--top-p")) f.sp.top_p = d.sampling.top_p;
  if (unset("--top-k")) f.sp.top_k = d.sampling.top_k;
  if (unset("--repetition-penalty")) f.sp.repetition_penalty = d.sampling.repetition_penalty;
  if (unset("--max-tokens") && d.max_new_tokens) f.max_tokens = *d.max_new_tokens;
  f.eos_ids = d.eos_ids;  // an id past the vocabulary is never sampled, so never matches
  return f;
}

// "temperature 0.6, top-p 0.95 (from DIR/generation_config.json)"
std::string sampling_summary(const GenFlags& f, const GenerationDefaults& d) {
  std::string s = f.sp.temperature == 0 ? "greedy" : strfmt("temperature %g", double(f.sp.temperature));
  if (f.sp.temperature > 0 && f.sp.top_p < 1) s += strfmt(", top-p %g", double(f.sp.top_p));
  if (f.sp.temperature > 0 && f.sp.top_k > 0) s += strfmt(", top-k %lld", (long long)f.sp.top_k);
  if (f.sp.repetition_penalty != 1) s += strfmt(", repetition penalty %g", double(f.sp.repetition_penalty));
  return s + (d.source.empty() ? "" : " (defaults from " + d.source + ")");
}

struct Loaded {
  GenFlags f;  // with the model's defaults
  GenerationDefaults defaults;
  std::unique_ptr<Model> model;
  Tokenizer tok;
  std::string dir;  // the model directory: -m, or the shipped default
  std::unique_ptr<ExpertParallel> ep;  // under mpiexec: this rank's share of the routed experts
};

Loaded load_all(GenFlags f) {
  if (f.model.empty()) f.model = default_model_dir();
  if (f.model.empty()) throw Error("no model: pass -m DIR (this build has no shipped default model)");
  if (!fs::is_directory(f.model) && !is_gguf_file(f.model))
    throw Error(f.model + ": not a model directory (config.json, *.safetensors, tokenizer.json) or a GGUF file");
  const std::string tdir = f.tokenizer.empty() ? f.model : f.tokenizer;
  Loaded l{f, read_generation_config(f.model), Model::load(f.model), load_model_tokenizer(f.model, f.tokenizer), f.model, nullptr};
  l.f = with_model_defaults(f, l.defaults);
  l.ep = spread_experts(*l.model, f.model);
  if (l.tok.vocab_size() > l.model->config().vocab_size)
    throw Error(strfmt("%s: the tokenizer has %lld tokens but the model's vocab_size is %lld", tdir.c_str(),
                       (long long)l.tok.vocab_size(), (long long)l.model->config().vocab_size));
  return l;
}

ChatStyle style_of(const Tokenizer& t) { return detect_chat_style(t); }

StopCriteria stops_for(const GenFlags& f, const Tokenizer& t) {
  StopCriteria s;
  s.max_new_tokens = f.max_tokens;
  s.stop_strings = f.stops;
  s.add_stop_ids({t.eos_id()});
  s.add_stop_ids(f.eos_ids);
  return s;
}

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

int run_generate(const GenFlags& given) {
  Loaded l = load_all(given);
  const GenFlags& f = l.f;
  std::string text = f.prompt;
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  if (f.chat) {
    std::vector<ChatMessage> msgs;
    if (!f.system.empty()) msgs.push_back({"system", f.system});
    msgs.push_back({"user", text});
    text = render_chat(style_of(l.tok), msgs, ChatOptions{true, f.think});
  }
  const bool add_bos = !f.chat && l.tok.bos_id() >= 0;
  std::vector<GenerationRequest> reqs(static_cast<size_t>(f.n));
  for (int64_t i = 0; i < f.n; ++i) {
    reqs[size_t(i)].prompt = l.tok.encode(text, add_bos);
    reqs[size_t(i)].sampling = f.sp;
    reqs[size_t(i)].sampling.seed = f.sp.seed + uint64_t(i);
    reqs[size_t(i)].stop = stops_for(f, l.tok);
    reqs[size_t(i)].speculative = speculative_for(f, l.model->config());
    if (f.chat)  // the format's end-of-turn tokens ("<|im_end|>", "<|eot_id|>") too
      reqs[size_t(i)].stop.add_stop_ids(chat_stop_ids(style_of(l.tok), l.tok));
  }
  Generator g(*l.model, &l.tok);
  std::vector<GenerationOutput> out = g.run(reqs, [&](size_t seq, std::string_view piece) {
    if (f.n == 1) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    (void)seq;
    return true;
  });
  int64_t generated = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    generated += int64_t(out[i].tokens.size());
    if (f.n > 1) std::printf("%s--- completion %zu (%s) ---\n%s\n", i ? "\n" : "", i, out[i].finish_reason.c_str(), out[i].text.c_str());
  }
  if (f.n == 1) std::printf("\n");
  const GenerationOutput& o = out[0];
  if (world().rank() == 0)
    std::fprintf(stderr, "prompt %lld tokens, generated %lld tokens in %lld sequence%s (%s); prefill %.1f tokens/s, decode %.2f tokens/s%s\n",
               (long long)o.prompt_tokens, (long long)generated, (long long)f.n, f.n > 1 ? "s" : "", o.finish_reason.c_str(),
               double(o.prompt_tokens * f.n) / o.prefill_seconds,
               o.decode_seconds > 0 ? double(generated - f.n) / o.decode_seconds : 0.0, draft_summary(out).c_str());
  if (l.ep) {
    const Config& c = l.model->config();
    const int64_t sent = world().bytes_sent();
    if (world().rank() == 0)
      std::fprintf(stderr, "expert parallel: %s; rank 0 runs routed experts %lld-%lld of %lld and the shared ones; "
                   "%.0f bytes sent per token per MoE layer (%lld token-layers)\n", world().describe().c_str(),
                   (long long)l.ep->first_expert(), (long long)l.ep->end_expert() - 1, (long long)c.n_routed_experts,
                   double(sent) / double(std::max<int64_t>(1, l.ep->token_layers())), (long long)l.ep->token_layers());
  }
  return 0;
}

int run_chat(const GenFlags& given) {
  Loaded l = load_all(given);
  const GenFlags& f = l.f;
  const ChatStyle style = style_of(l.tok);
  const ChatTokens& ct = chat_tokens(style);
  const bool tty = isatty(STDOUT_FILENO);
  const char* dim = tty ? "\x1b[2m" : "";
  const char* reset = tty ? "\x1b[0m" : "";
  struct sigaction sa {};
  sa.sa_handler = on_sigint;  // no SA_RESTART: Ctrl-C interrupts a read at the prompt too
  sigaction(SIGINT, &sa, nullptr);

  std::vector<ChatMessage> history;
  auto start_over = [&] {
    history.clear();
    if (!f.system.empty()) history.push_back({"system", f.system});
  };
  start_over();
  // seek's own small models (SeekTiny format) learned from one question per document: earlier turns
  // in the prompt only confuse them, so by default each message starts a new conversation.
  const bool single_turn = f.single_turn || (!f.multi_turn && style == ChatStyle::SeekTiny);
  Generator g(*l.model, &l.tok);
  std::printf("seek chat — %s.\nSampling: %s. %s/exit or Ctrl-D leaves, Ctrl-C stops an answer.\n",
              describe_model(l.dir, l.model->config()).c_str(), sampling_summary(f, l.defaults).c_str(),
              single_turn ? "Each message is a new conversation (--multi-turn keeps history); "
                          : "/reset clears the history, ");
  uint64_t turn = 0;
  for (;;) {
    std::printf("\n> ");
    std::fflush(stdout);
    std::string line;
    g_interrupted = false;
    if (!std::getline(std::cin, line)) {
      if (g_interrupted && !std::cin.eof()) {  // Ctrl-C at the prompt: a fresh prompt
        std::cin.clear();
        continue;
      }
      std::printf("\n");
      return 0;
    }
    if (line == "/exit" || line == "/quit") return 0;
    if (line == "/reset") {
      start_over();
      std::printf("(history cleared)\n");
      continue;
    }
    if (line.empty()) continue;
    if (single_turn) start_over();
    history.push_back({"user", line});
    GenerationRequest r;
    r.prompt = l.tok.encode(render_chat(style, history, ChatOptions{true, f.think}), false);
    r.sampling = f.sp;
    r.sampling.seed = f.sp.seed + turn++;
    r.stop = stops_for(f, l.tok);
    r.speculative = speculative_for(f, l.model->config());
    r.stop.add_stop_ids(chat_stop_ids(style, l.tok));  // the format's end-of-turn tokens too
    // The answer gets what is left of the model's context; a conversation that no longer fits says so.
    const int64_t room = l.model->config().max_position_embeddings - int64_t(r.prompt.size());
    if (room < 1) {
      history.pop_back();
      std::printf("(the conversation has outgrown the model's context of %lld tokens: /reset to start over)\n",
                  (long long)l.model->config().max_position_embeddings);
      continue;
    }
    r.stop.max_new_tokens = std::min(r.stop.max_new_tokens, room);
    ReasoningStream rs(f.think, std::string(ct.think_open), std::string(ct.think_close));
    bool in_reasoning = false;
    AnswerTagFilter tags;  // "<answer>132</answer>" reads "132"
    auto show = [&](ReasoningStream::Delta d, bool last = false) {
      d.content = tags.push(d.content);
      if (last) d.content += tags.finish();
      if (!d.reasoning.empty()) {
        if (!in_reasoning) std::printf("%s(thinking) ", dim);
        in_reasoning = true;
        std::printf("%s", d.reasoning.c_str());
      }
      if (!d.content.empty()) {
        if (in_reasoning) std::printf("%s\n", reset);
        in_reasoning = false;
        std::printf("%s", d.content.c_str());
      }
      std::fflush(stdout);
    };
    g_interrupted = false;
    std::vector<GenerationOutput> out;
    try {
      out = g.run({r}, [&](size_t, std::string_view piece) {
        show(rs.push(piece));
        return !g_interrupted.load();
      });
    } catch (const Error& e) {  // one bad turn does not end the conversation
      history.pop_back();
      std::printf("%s\n(error: %s)\n", reset, e.what());
      continue;
    }
    show(rs.finish(), true);
    if (in_reasoning) std::printf("%s", reset);
    if (out[0].finish_reason == "cancelled") std::printf(" [stopped]");
    std::printf("\n");
    history.push_back({"assistant", out[0].text});
  }
}

}  // namespace

void register_generate_commands(CLI::App& app) {
  static GenFlags gen, chat;
  auto* g = app.add_subcommand("generate", "Stream a completion of a prompt (or n of them, batched)");
  add_sampling_flags(g, gen);
  g->add_option("-p,--prompt", gen.prompt, "prompt text; - reads stdin")->required();
  g->add_option("-n", gen.n, "completions, generated as one batch")->capture_default_str()->check(CLI::Range(1, 256));
  g->add_flag("--chat", gen.chat, "wrap the prompt as a user turn in the tokenizer's chat format");
  g->callback([] {
    int rc = run_generate(gen);
    if (rc) throw CLI::RuntimeError(rc);
  });
  auto* c = app.add_subcommand("chat", "Talk to a model in the terminal");
  add_sampling_flags(c, chat);
  chat.max_tokens = 512;
  auto* single = c->add_flag("--single-turn", chat.single_turn,
                             "each message starts a new conversation (the default for seek's own small models)");
  c->add_flag("--multi-turn", chat.multi_turn, "keep the history (the default for other models)")->excludes(single);
  c->callback([] { run_chat(chat); });
}

}  // namespace seek
