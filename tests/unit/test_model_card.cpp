// What a model is, in one line: seek_model.json written and read back, the line with and without a card,
// and a bad card refused naming the file and key.
#include <gtest/gtest.h>

#include <fstream>

#include "model/model_card.h"
#include "test_util.h"
#include "util/error.h"

using namespace seek;

TEST(ModelCard, WrittenReadAndDescribedInOneLine) {
  test::TempDir dir;
  const Config c = parse_config(test::tiny_config("deepseek_v3"), "tiny");
  const std::string bare = describe_model(dir.path.string(), c);
  EXPECT_NE(bare.find("(deepseek_v3, "), std::string::npos) << bare;
  EXPECT_NE(bare.find("parameters"), std::string::npos) << bare;
  EXPECT_FALSE(read_model_card(dir.path.string()));
  write_model_card(dir.path.string(), {"seek-tiny", "the teacher after GRPO", "arithmetic", "What is 1 + 2?"});
  const std::optional<ModelCard> card = read_model_card(dir.path.string());
  ASSERT_TRUE(card);
  EXPECT_EQ(card->name, "seek-tiny");
  EXPECT_EQ(card->example, "What is 1 + 2?");
  const std::string line = describe_model(dir.path.string(), c);
  EXPECT_EQ(line.rfind("seek-tiny: the teacher after GRPO, ", 0), 0u) << line;
  EXPECT_NE(line.find("active per token), trained on arithmetic; try \"What is 1 + 2?\""), std::string::npos) << line;
  std::ofstream(dir.path / "seek_model.json") << R"({"name": 3})";
  try {
    read_model_card(dir.path.string());
    ADD_FAILURE() << "a number for name was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("seek_model.json: name must be a string"), std::string::npos) << e.what();
  }
}
