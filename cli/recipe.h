// Train recipes: a TOML file whose keys are `ropelab train` flags without the
// dashes. Plain C++ over CLI11 (no torch), so the reader can be fuzzed and
// tested without libtorch; cli/cmd_train.cpp applies it to the train command.
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "common/error.h"

namespace ropelab::cli {

// Applies a recipe's keys to the flags they name, except flags given on the
// command line (those override the recipe). CLI11 2.1 reads config files
// only for the root command, so the train subcommand does it here, and
// refuses an unknown or sectioned key instead of ignoring it. CLI11's own
// refusals (unreadable TOML, a value the flag cannot take) become one Error
// naming the file and the key, as every other bad input does.
inline void apply_recipe(CLI::App& cmd, const std::string& path) {
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(path);
  } catch (const CLI::Error& e) {
    throw Error(path + ": not a readable TOML recipe (" + e.what() + ")");
  }
  for (const auto& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    if (!item.parents.empty())
      throw Error(path + ": key \"" + item.fullname() + "\": sections are not used; write keys at the top level");
    CLI::Option* op = cmd.get_option_no_throw("--" + item.name);
    if (op == nullptr || !op->get_configurable())
      throw Error(path + ": unknown key \"" + item.name + "\" (keys are `ropelab train` flags without the dashes)");
    if (op->count() > 0) continue;
    try {
      op->add_result(item.inputs);
      op->run_callback();
    } catch (const CLI::Error& e) {
      throw Error(path + ": key \"" + item.name + "\": " + e.what());
    }
  }
}

}  // namespace ropelab::cli
