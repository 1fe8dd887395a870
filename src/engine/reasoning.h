// reasoning.h — splits a completion into reasoning (inside <think>…</think>) and answer content,
// for a whole text (split_reasoning) and for text streamed in pieces (ReasoningStream); both give the
// same result for the same text, however it is chunked.
//
// The rules, in order:
// 1. Opening. If the output starts with `open` (after any spaces, tabs, CR or LF, which are dropped
//    with it), the reasoning begins after the tag. Otherwise, when the prompt already opened the
//    reasoning (prompt_opened_think, R1's "<think>\n" prefill), the reasoning begins at the first byte
//    of the output; else there is no reasoning and the whole output is content, verbatim (later tags
//    included: `open` counts only at the start, a stray `close` is literal text).
//    With prompt_opened_think a repeated `open` at the start is simply dropped.
// 2. Reasoning. One "\n" right after the opening (tag or start of the output) is dropped; the reasoning
//    runs up to the first `close`; one "\n" right before `close` is dropped too. So R1's
//    "<think>\nstep 1\nstep 2\n</think>" gives "step 1\nstep 2", and "<think>\n\n</think>" gives "".
// 3. Cut off. With no `close` the whole rest is reasoning (nothing dropped at its end) and
//    reasoning_closed is false: the model ran out of tokens while thinking.
// 4. Content. After `close`, all leading "\n" and "\r" are dropped; the rest is content, verbatim. Any
//    further tags and `<answer>…</answer>` stay inside the content as they are (we do not interpret
//    them; a client that asked for that format parses it).
#pragma once
#include <string>
#include <string_view>

namespace seek {

struct ReasoningSplit {
  std::string reasoning;
  std::string content;
  bool reasoning_closed = false;  // the closing tag was seen
};

// prompt_opened_think: the prompt ended inside <think> (R1 prefill), so the output starts in reasoning.
ReasoningSplit split_reasoning(std::string_view completion, bool prompt_opened_think,
                               std::string_view open = "<think>", std::string_view close = "</think>");

// Incremental form: feed text chunks as they are generated. A chunk may end inside a tag or right where
// rule 1, 2 or 4 may yet drop something; that text is held back until the next chunk settles it, so a
// delta can be empty. finish() flushes what is held (and ends the stream: push() after it is a bug).
class ReasoningStream {
 public:
  explicit ReasoningStream(bool prompt_opened_think, std::string open = "<think>",
                           std::string close = "</think>");
  struct Delta {
    std::string reasoning;
    std::string content;
  };
  Delta push(std::string_view chunk);
  Delta finish();
  // True while text would go to the reasoning: inside it, or (prompt_opened_think) before the first
  // byte has decided anything.
  bool in_reasoning() const;
  bool reasoning_closed() const { return state_ == State::AfterClose; }

 private:
  enum class State {
    Start,       // nothing decided: held text is whitespace and maybe a prefix of `open`
    Reasoning,   // inside the reasoning, looking for `close`
    AfterClose,  // after `close`: leading newlines still being dropped until content_started_
    Content,     // no reasoning at all: everything is content
  };
  void run(Delta& d, bool at_end);

  bool prompt_opened_;
  std::string open_, close_;
  State state_;
  std::string held_;           // text received but not yet emitted
  bool strip_lead_nl_ = false;  // Reasoning: the first byte, if "\n", is still to be dropped
  bool content_started_ = false;
  bool finished_ = false;
};

// What a person reads of seek's own models' content: they end with the R1-Zero template's
// "<answer>132</answer>", and `seek chat` and the chat page show "132". The tags are dropped wherever
// they appear; text streamed in pieces gives the same result however it is chunked (a piece that ends
// in what may begin a tag is held back until the next settles it). The API's `content` keeps them.
class AnswerTagFilter {
 public:
  std::string push(std::string_view chunk);
  std::string finish();  // what is held back: the start of a tag that never completed

 private:
  std::string held_;
};

}  // namespace seek
