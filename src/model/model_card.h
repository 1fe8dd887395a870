// model_card.h — what a model is, in one line for the person who loads it: `seek chat` prints it when it
// starts and the chat page shows it. From seek_model.json beside config.json, which the recipe (and
// `seek demo`) write:
//   {"name": "seek-tiny", "about": "the teacher after GRPO ...", "trained_on": "...",
//    "example": "What is 8517 + 6625?"}
// and the parameter count from the config.
#pragma once
#include <optional>
#include <string>

#include "model/config.h"

namespace seek {

struct ModelCard {
  std::string name;        // "seek-tiny"
  std::string about;       // what it is: "the teacher after GRPO (R1-Zero style)"
  std::string trained_on;  // "seek's synthetic arithmetic corpus"
  std::string example;     // a question it answers
};

// The card in `dir`, or nullopt when there is none (a GGUF file, a model from elsewhere). Throws Error
// naming the file and key when the file is not a JSON object of strings.
std::optional<ModelCard> read_model_card(const std::string& dir);
// Writes dir/seek_model.json atomically.
void write_model_card(const std::string& dir, const ModelCard& card);
// One line: "seek-tiny: the teacher after GRPO, 1.41M parameters (0.61M active per token), trained on
// seek's synthetic arithmetic corpus; try "What is 8517 + 6625?"". Without a card: "DIR (deepseek_v3,
// 1.41M parameters)".
std::string describe_model(const std::string& dir, const Config& c);

}  // namespace seek
