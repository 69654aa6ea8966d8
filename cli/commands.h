// Each subcommand registers itself on the root app; cli/ only parses flags
// and calls the libraries. Callbacks throw ropelab::Error for bad input.
#pragma once
#include <string>
#include <vector>

namespace CLI { class App; }

namespace ropelab::cli {
void add_data_command(CLI::App& root);     // ropelab data prepare
void add_train_command(CLI::App& root);    // ropelab train
void add_predict_command(CLI::App& root);  // ropelab predict
void add_eval_command(CLI::App& root);     // ropelab eval gamma
void add_fit_command(CLI::App& root);      // ropelab fit gamma
void add_launch_command(CLI::App& root);   // ropelab launch --nproc N -- CMD
void add_report_command(CLI::App& root);   // ropelab report
void add_export_command(CLI::App& root);   // ropelab export hf
void add_pilot_command(CLI::App& root);    // ropelab pilot --config STUDY
void add_rope_command(CLI::App& root);     // ropelab rope list | freqs
void add_logits_command(CLI::App& root);   // ropelab logits

// The words after a standalone "--" on the command line (main splits them off
// before CLI11 parses the rest); only `launch` takes them.
std::vector<std::string>& trailing_args();
}  // namespace ropelab::cli
