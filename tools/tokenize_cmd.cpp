// tokenize_cmd.cpp — `seek tokenize` and `seek tokenizer train` (being written).
#include "commands.h"

namespace seek {

void register_tokenizer_commands(CLI::App& app) { (void)app; }

}  // namespace seek
