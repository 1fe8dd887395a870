// generate_cmd.cpp — `seek generate` and `seek chat` (being written).
#include "commands.h"

namespace seek {

void register_generate_commands(CLI::App& app) { (void)app; }

}  // namespace seek
