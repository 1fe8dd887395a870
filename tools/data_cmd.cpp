// data_cmd.cpp — `seek corpus` and `seek data` (being written).
#include "commands.h"

namespace seek {

void register_data_commands(CLI::App& app) { (void)app; }

}  // namespace seek
