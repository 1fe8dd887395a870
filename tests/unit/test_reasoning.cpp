// Reasoning parser: each rule of engine/reasoning.h on a whole completion, and the streamed form giving
// the same split for every two-piece split, 1-byte chunks and random chunkings of many completions.
#include <gtest/gtest.h>

#include <random>

#include "engine/reasoning.h"

using namespace seek;

namespace {

void expect_split(std::string_view text, bool opened, std::string_view reasoning, std::string_view content,
                  bool closed) {
  ReasoningSplit r = split_reasoning(text, opened);
  EXPECT_EQ(r.reasoning, reasoning) << "text: " << text;
  EXPECT_EQ(r.content, content) << "text: " << text;
  EXPECT_EQ(r.reasoning_closed, closed) << "text: " << text;
}

// Feeds `text` cut at the given positions (sorted) and returns the joined deltas.
ReasoningSplit stream(std::string_view text, bool opened, const std::vector<size_t>& cuts,
                      std::string_view open = "<think>", std::string_view close = "</think>") {
  ReasoningStream s(opened, std::string(open), std::string(close));
  ReasoningSplit r;
  size_t at = 0;
  auto add = [&](const ReasoningStream::Delta& d) {
    r.reasoning += d.reasoning;
    r.content += d.content;
  };
  for (size_t c : cuts) {
    add(s.push(text.substr(at, c - at)));
    at = c;
  }
  add(s.push(text.substr(at)));
  add(s.finish());
  r.reasoning_closed = s.reasoning_closed();
  return r;
}

void expect_same(const ReasoningSplit& a, const ReasoningSplit& b, std::string_view what) {
  EXPECT_EQ(a.reasoning, b.reasoning) << what;
  EXPECT_EQ(a.content, b.content) << what;
  EXPECT_EQ(a.reasoning_closed, b.reasoning_closed) << what;
}

}  // namespace

TEST(Reasoning, OpeningTagInOutput) {
  expect_split("<think>\nLet me add.\n</think>\n\nThe answer is 4.", false, "Let me add.", "The answer is 4.",
               true);
  expect_split("<think>a</think>b", false, "a", "b", true);
  expect_split("\n <think>a</think>b", false, "a", "b", true);  // whitespace before the tag dropped
  expect_split("<think>\n\n</think>\n\nHi", false, "", "Hi", true);  // R1's empty thought
  expect_split("<think></think>", false, "", "", true);
}

TEST(Reasoning, OpeningTagInPrompt) {
  expect_split("Let me add.\n</think>\n\n4", true, "Let me add.", "4", true);
  expect_split("\nstep\n\n</think>\r\n4\n", true, "step\n", "4\n", true);  // one \n each side only
  expect_split("</think>4", true, "", "4", true);
  expect_split("<think>\nagain\n</think>4", true, "again", "4", true);  // a repeated opening tag dropped
}

TEST(Reasoning, NoTags) {
  expect_split("Just an answer.\n", false, "", "Just an answer.\n", false);
  expect_split("  Just an answer.", false, "", "  Just an answer.", false);  // kept verbatim
  expect_split("", false, "", "", false);
  // The prompt opened the reasoning and it never closed: cut off while thinking.
  expect_split("thinking hard", true, "thinking hard", "", false);
  expect_split("\nthinking\n", true, "thinking\n", "", false);
  expect_split("", true, "", "", false);
}

TEST(Reasoning, CutOffInsideReasoning) {
  expect_split("<think>\nstep 1\nstep 2\n", false, "step 1\nstep 2\n", "", false);
  expect_split("<think>\nstep </thi", false, "step </thi", "", false);
}

TEST(Reasoning, TagsOnlyCountWhereExpected) {
  // <think> counts only at the start; a stray </think> without reasoning is content.
  expect_split("Answer <think>x</think> y", false, "", "Answer <think>x</think> y", false);
  expect_split("Answer</think>y", false, "", "Answer</think>y", false);
  // After the reasoning, later tags are content.
  expect_split("<think>a</think>b<think>c</think>d", false, "a", "b<think>c</think>d", true);
  expect_split("a</think>b</think>c", true, "a", "b</think>c", true);
  // A prefix of the tag at the end is text.
  expect_split("<thi", false, "", "<thi", false);
}

TEST(Reasoning, AnswerTagsStayInContent) {
  expect_split("<think>\nx\n</think>\n<answer>42</answer>", false, "x", "<answer>42</answer>", true);
}

TEST(Reasoning, CustomTags) {
  ReasoningSplit r = split_reasoning("[R]\nhmm\n[/R]\nok", false, "[R]", "[/R]");
  EXPECT_EQ(r.reasoning, "hmm");
  EXPECT_EQ(r.content, "ok");
  expect_same(stream("[R]\nhmm\n[/R]\nok", false, {1, 2, 3, 9, 10}, "[R]", "[/R]"), r, "custom tags");
}

TEST(Reasoning, StreamState) {
  ReasoningStream s(true);
  EXPECT_TRUE(s.in_reasoning());
  auto d = s.push("Hmm.\n</thi");
  EXPECT_EQ(d.reasoning, "Hmm.");  // "\n</thi" held: it may be the end of the reasoning
  EXPECT_EQ(d.content, "");
  EXPECT_TRUE(s.in_reasoning());
  d = s.push("nk>\n\nYes");
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "Yes");
  EXPECT_FALSE(s.in_reasoning());
  EXPECT_TRUE(s.reasoning_closed());
  d = s.finish();
  EXPECT_EQ(d.reasoning + d.content, "");

  ReasoningStream t(false);
  EXPECT_FALSE(t.in_reasoning());
  d = t.push("<th");
  EXPECT_EQ(d.reasoning + d.content, "");  // maybe the opening tag
  d = t.push("ink>\nA");
  EXPECT_EQ(d.reasoning, "A");
  EXPECT_TRUE(t.in_reasoning());
  d = t.finish();  // cut off
  EXPECT_EQ(d.reasoning + d.content, "");
  EXPECT_FALSE(t.reasoning_closed());
}

// Every completion, every way of cutting it: the stream agrees with split_reasoning.
TEST(Reasoning, StreamMatchesWholeOnEveryChunking) {
  const std::vector<std::string> texts = {
      "<think>\nLet me add.\n</think>\n\nThe answer is 4.",
      "Let me add.\n</think>\n\n4",
      "\n <think>a</think>b",
      "<think>\n\n</think>\n\nHi",
      "<think></think>",
      "\nstep\n\n</think>\r\n4\n",
      "</think>4",
      "<think>\nagain\n</think>4",
      "Just an answer.\n",
      "  Just an answer.",
      "",
      "\n",
      "\n\n\n",
      "thinking hard",
      "<think>\nstep 1\nstep 2\n",
      "<think>\nstep </thi",
      "Answer <think>x</think> y",
      "Answer</think>y",
      "<think>a</think>b<think>c</think>d",
      "a</think>b</think>c",
      "<thi",
      "<<think><</think></</think>",
      "<think>a<</</th</thinkk</think>",
      "<think>\nx\n</think>\n<answer>42</answer>",
      "<think>\nx\n\n\n</think>\n\n\n",
      "<think>\nπ ≈ 3.14159… 思考\n</think>\n\n答案：π",
  };
  std::mt19937 rng(1234);
  for (bool opened : {false, true}) {
    for (const std::string& t : texts) {
      ReasoningSplit whole = split_reasoning(t, opened);
      std::string name = "text \"" + t + "\" opened " + std::to_string(opened);
      expect_same(stream(t, opened, {}), whole, name + " in one piece");
      for (size_t c = 0; c <= t.size(); ++c) expect_same(stream(t, opened, {c}), whole, name + " cut at " + std::to_string(c));
      std::vector<size_t> bytes;
      for (size_t c = 1; c < t.size(); ++c) bytes.push_back(c);
      expect_same(stream(t, opened, bytes), whole, name + " in 1-byte chunks");
      for (int trial = 0; trial < 50; ++trial) {
        std::vector<size_t> cuts;
        for (size_t c = 0; c <= t.size(); ++c)
          if (rng() % 3 == 0) cuts.push_back(c);
        expect_same(stream(t, opened, cuts), whole, name + " random chunks, trial " + std::to_string(trial));
      }
    }
  }
}

TEST(AnswerTagFilter, DropsTheTagsHoweverTheTextIsChunked) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"So 47 + 85 = 132.\n<answer>132</answer>", "So 47 + 85 = 132.\n132"},
      {"<answer>-7</answer>", "-7"},
      {"a <b> and <answ and 1 < 2 </answer", "a <b> and <answ and 1 < 2 </answer"},  // no whole tag: verbatim
      {"<<answer>>x<</answer>", "<>x<"},
      {"no tags at all", "no tags at all"},
      {"", ""},
  };
  for (const auto& [text, want] : cases) {
    for (size_t piece = 1; piece <= text.size() + 1; ++piece) {
      AnswerTagFilter f;
      std::string got;
      for (size_t i = 0; i < text.size(); i += piece) got += f.push(std::string_view(text).substr(i, piece));
      got += f.finish();
      EXPECT_EQ(got, want) << "\"" << text << "\" in pieces of " << piece;
    }
  }
}
