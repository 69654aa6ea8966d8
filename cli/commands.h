// Each subcommand registers itself on the root app; cli/ only parses flags
// and calls the libraries. Callbacks throw ropelab::Error for bad input.
#pragma once
namespace CLI { class App; }

namespace ropelab::cli {
void add_data_command(CLI::App& root);     // ropelab data prepare
void add_train_command(CLI::App& root);    // ropelab train
void add_predict_command(CLI::App& root);  // ropelab predict
void add_eval_command(CLI::App& root);     // ropelab eval gamma
void add_fit_command(CLI::App& root);      // ropelab fit gamma
}  // namespace ropelab::cli
