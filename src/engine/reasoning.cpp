// reasoning.cpp — reasoning/content split, whole and streamed (rules in the header). The two are
// written separately on purpose: the tests check one against the other on every chunking.
#include "engine/reasoning.h"

#include <algorithm>

#include "util/error.h"

namespace seek {

namespace {

constexpr std::string_view kSpace = " \t\r\n";  // may precede the opening tag (rule 1)
constexpr std::string_view kNewline = "\r\n";   // dropped after the closing tag (rule 4)

// Length of the longest proper prefix of `tag` that `text` ends with.
size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  for (size_t k = std::min(text.size(), tag.size() - 1); k > 0; --k)
    if (text.substr(text.size() - k) == tag.substr(0, k)) return k;
  return 0;
}

}  // namespace

ReasoningSplit split_reasoning(std::string_view completion, bool prompt_opened_think, std::string_view open,
                               std::string_view close) {
  SEEK_ASSERT_MSG(!open.empty() && !close.empty(), "reasoning tags must not be empty");
  ReasoningSplit r;
  std::string_view rest;
  size_t i = completion.find_first_not_of(kSpace);
  if (i != std::string_view::npos && completion.substr(i).starts_with(open)) {
    rest = completion.substr(i + open.size());
  } else if (prompt_opened_think) {
    rest = completion;
  } else {
    r.content = completion;
    return r;
  }
  if (rest.starts_with('\n')) rest.remove_prefix(1);
  size_t c = rest.find(close);
  if (c == std::string_view::npos) {
    r.reasoning = rest;
    return r;
  }
  std::string_view body = rest.substr(0, c);
  if (body.ends_with('\n')) body.remove_suffix(1);
  r.reasoning = body;
  r.reasoning_closed = true;
  std::string_view after = rest.substr(c + close.size());
  size_t a = after.find_first_not_of(kNewline);
  r.content = a == std::string_view::npos ? std::string_view() : after.substr(a);
  return r;
}

ReasoningStream::ReasoningStream(bool prompt_opened_think, std::string open, std::string close)
    : prompt_opened_(prompt_opened_think), open_(std::move(open)), close_(std::move(close)),
      state_(State::Start) {
  SEEK_ASSERT_MSG(!open_.empty() && !close_.empty(), "reasoning tags must not be empty");
}

bool ReasoningStream::in_reasoning() const {
  return state_ == State::Reasoning || (state_ == State::Start && prompt_opened_);
}

ReasoningStream::Delta ReasoningStream::push(std::string_view chunk) {
  SEEK_ASSERT_MSG(!finished_, "ReasoningStream::push after finish");
  held_.append(chunk);
  Delta d;
  run(d, false);
  return d;
}

ReasoningStream::Delta ReasoningStream::finish() {
  Delta d;
  if (finished_) return d;
  run(d, true);
  finished_ = true;
  return d;
}

// Moves what `held_` settles into `d`, changing state as tags are found; keeps the rest held unless
// at_end.
void ReasoningStream::run(Delta& d, bool at_end) {
  for (;;) {
    switch (state_) {
      case State::Start: {
        size_t i = held_.find_first_not_of(kSpace);
        if (i != std::string::npos) {
          std::string_view tail = std::string_view(held_).substr(i);
          if (tail.starts_with(open_)) {
            held_.erase(0, i + open_.size());
            state_ = State::Reasoning;
            strip_lead_nl_ = true;
            continue;
          }
          if (!at_end && std::string_view(open_).starts_with(tail)) return;  // maybe the tag, cut
        } else if (!at_end) {
          return;  // only whitespace so far
        }
        // No opening tag in the output.
        if (prompt_opened_) {
          state_ = State::Reasoning;
          strip_lead_nl_ = true;
        } else {
          state_ = State::Content;
        }
        continue;
      }
      case State::Reasoning: {
        if (held_.empty()) return;
        if (strip_lead_nl_) {
          if (held_[0] == '\n') held_.erase(0, 1);
          strip_lead_nl_ = false;
          continue;
        }
        size_t c = held_.find(close_);
        if (c != std::string::npos) {
          size_t n = c;
          if (n > 0 && held_[n - 1] == '\n') --n;
          d.reasoning.append(held_, 0, n);
          held_.erase(0, c + close_.size());
          state_ = State::AfterClose;
          continue;
        }
        size_t keep = 0;
        if (!at_end) {
          keep = partial_tag_suffix(held_, close_);
          if (held_.size() > keep && held_[held_.size() - keep - 1] == '\n') ++keep;
        }
        d.reasoning.append(held_, 0, held_.size() - keep);
        held_.erase(0, held_.size() - keep);
        return;
      }
      case State::AfterClose:
        if (!content_started_) {
          size_t a = held_.find_first_not_of(kNewline);
          if (a == std::string::npos) {
            held_.clear();
            return;
          }
          held_.erase(0, a);
          content_started_ = true;
        }
        [[fallthrough]];
      case State::Content:
        d.content += held_;
        held_.clear();
        return;
    }
  }
}

std::string AnswerTagFilter::push(std::string_view chunk) {
  static constexpr std::string_view kTags[] = {"<answer>", "</answer>"};
  held_ += chunk;
  std::string out;
  size_t i = 0;
  while (i < held_.size()) {
    if (held_[i] != '<') {
      out += held_[i++];
      continue;
    }
    bool dropped = false, maybe = false;
    for (std::string_view tag : kTags) {
      const std::string_view rest = std::string_view(held_).substr(i);
      if (rest.substr(0, tag.size()) == tag) {
        i += tag.size();
        dropped = true;
        break;
      }
      if (rest.size() < tag.size() && tag.substr(0, rest.size()) == rest) maybe = true;
    }
    if (dropped) continue;
    if (maybe) break;  // the end of what came so far may begin a tag
    out += held_[i++];
  }
  held_.erase(0, i);
  return out;
}

std::string AnswerTagFilter::finish() {
  std::string rest = std::move(held_);
  held_.clear();
  return rest;
}

}  // namespace seek
