// ropelab: one executable, one subcommand per study step. This file only
// wires the subcommands and turns errors into one readable line.
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <ATen/Parallel.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "common/allocator.h"
#include "common/error.h"

std::vector<std::string>& ropelab::cli::trailing_args() {
  static std::vector<std::string> args;
  return args;
}

int main(int argc, char** argv) {
  // Freed tensor memory stays in the process (common/allocator.h says why).
  ropelab::keep_freed_memory();
  // Debian's libtorch starts with one intra-op thread; use every core unless told otherwise.
  if (!std::getenv("OMP_NUM_THREADS")) at::set_num_threads(std::max(1u, std::thread::hardware_concurrency()));
  CLI::App app{"ropelab: a testbed for controlled studies of rotary position embeddings"};
  app.require_subcommand(1);
  ropelab::cli::add_data_command(app);
  ropelab::cli::add_train_command(app);
  ropelab::cli::add_predict_command(app);
  ropelab::cli::add_eval_command(app);
  ropelab::cli::add_fit_command(app);
  ropelab::cli::add_launch_command(app);
  ropelab::cli::add_report_command(app);
  ropelab::cli::add_export_command(app);
  ropelab::cli::add_pilot_command(app);
  ropelab::cli::add_rope_command(app);
  ropelab::cli::add_logits_command(app);
  // Everything after a standalone "--" is the command `launch` runs.
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--") {
      ropelab::cli::trailing_args().assign(argv + i + 1, argv + argc);
      argc = i;
      break;
    }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ropelab::Error& e) {
    std::cerr << "ropelab: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "ropelab: error (libtorch): " << e.what_without_backtrace() << "\n";
    return 3;
  }
  return 0;
}
