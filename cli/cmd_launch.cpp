// `ropelab launch --nproc N -- train ...`: N local ranks of one command, with
// the torchrun variables set. If a rank fails, the others are stopped and the
// failing rank is named; the launcher exits non-zero.
#include <signal.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/range_check.h"
#include "common/subprocess.h"
#include "common/error.h"

namespace ropelab::cli {
namespace {

int launch(int nproc, int port, int grace_s, const std::vector<std::string>& args) {
  ChildGroup ranks;  // a SIGINT/SIGTERM to the launcher reaches every rank (they stop at the same step)
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r)
    pids.push_back(ranks.start(args, {{"RANK", std::to_string(r)}, {"LOCAL_RANK", std::to_string(r)},
                                      {"WORLD_SIZE", std::to_string(nproc)}, {"MASTER_ADDR", "127.0.0.1"},
                                      {"MASTER_PORT", std::to_string(port)}}));
  int failed_rank = -1, exit_code = 0;
  std::optional<std::chrono::steady_clock::time_point> kill_at;  // once a rank failed: the grace period's end
  while (ranks.running() > 0) {
    std::optional<ChildGroup::Ended> ended;
    if (!kill_at) {
      ended = ranks.wait_any();
    } else {
      const double left = std::chrono::duration<double>(*kill_at - std::chrono::steady_clock::now()).count();
      ended = ranks.wait_any_for(std::max(0.0, left));
      if (!ended) {  // the grace period is over: what still runs is killed
        ranks.signal_all(SIGKILL);
        continue;
      }
    }
    const auto [pid, status] = *ended;
    const int rank = static_cast<int>(std::find(pids.begin(), pids.end(), pid) - pids.begin());
    if (succeeded(status)) continue;
    if (ranks.signal_received() != 0 && interrupted(status)) {  // stopped as asked, not a failure
      if (exit_code == 0) exit_code = exit_code_of(status);
      continue;
    }
    // One write: the ranks share this stderr, and a line sent in pieces gets theirs in between.
    const std::string line = "launch: rank " + std::to_string(rank) + " " + describe(status) +
                             (failed_rank < 0 ? "; stopping the other ranks" : "") + "\n";
    std::cerr << line << std::flush;
    if (failed_rank >= 0) continue;
    failed_rank = rank;
    exit_code = exit_code_of(status);  // a real failure outranks an interruption
    ranks.signal_all(SIGTERM);
    kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(grace_s);
  }
  return exit_code;
}

}  // namespace

void add_launch_command(CLI::App& root) {
  auto* cmd = root.add_subcommand("launch", "run N local ranks of a command (data parallel), e.g. launch --nproc 2 -- train ...");
  auto nproc = std::make_shared<int>(2);
  auto port = std::make_shared<int>(29500);
  auto grace = std::make_shared<int>(10);
  cmd->add_option("--nproc", *nproc, "ranks to start on this machine")->check(in_range(1, 256))->capture_default_str();
  cmd->add_option("--master-port", *port, "TCPStore port of rank 0")->check(in_range(1, 65535))->capture_default_str();
  cmd->add_option("--grace", *grace, "seconds the other ranks get to stop after one fails")->capture_default_str();
  cmd->callback([=] {
    const auto& args = trailing_args();  // the words after `--`
    if (args.empty()) throw Error("launch: give the command to run after --, e.g. launch --nproc 2 -- train --config R --out D");
    const int code = launch(*nproc, *port, *grace, args);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace ropelab::cli
