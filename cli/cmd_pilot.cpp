// `ropelab pilot --config STUDY.toml`: runs a whole study as ordinary ropelab
// commands (study/pilot.h plans them), each in its own process, printing each
// command so any stage can be reproduced by hand. Re-running continues where
// an interrupted study stopped. `--jobs N` runs N runs (θ, or θ × seed) side
// by side (a CPU's cores, or small models sharing a GPU); the report waits
// for all of them.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/range_check.h"
#include "cli/subprocess.h"
#include "common/error.h"
#include "common/io.h"
#include "study/pilot.h"

namespace ropelab::cli {
namespace {

// The subcommand a stage runs, to check the study file's keys before any work.
CLI::App* stage_command(CLI::App& root, const std::string& stage) {
  if (stage == "train" || stage == "report") return root.get_subcommand(stage);
  return root.get_subcommand("eval")->get_subcommand(stage);
}

// Checks every key against its command's flags, and turns a TOML array into
// what the flag takes: repeated for options that collect several values
// (e.g. --data-input), one comma list otherwise (e.g. --scaling, --ratios).
void check_keys(CLI::App& root, study::Study& s) {
  for (auto& [stage, flags] : s.flags) {
    std::vector<std::pair<std::string, std::string>> merged;
    for (size_t i = 0; i < flags.size(); ++i) {
      const auto& [key, value] = flags[i];
      const CLI::Option* opt = stage_command(root, stage)->get_option_no_throw("--" + key);
      if (opt == nullptr)
        throw Error(s.file + ": key \"" + stage + "." + key + "\": `ropelab " +
                    (stage == "train" || stage == "report" ? stage : "eval " + stage) + "` has no flag --" + key);
      const bool same_array = i > 0 && flags[i - 1].first == key;
      if (same_array && opt->get_items_expected_max() <= 1) merged.back().second += "," + value;
      else merged.push_back({key, value});
    }
    flags = merged;
  }
}

std::string shell_line(const std::vector<std::string>& args) {
  std::string line = "ropelab";
  for (const auto& a : args) line += " " + (a.find_first_of(" \"'<>") == std::string::npos ? a : "'" + a + "'");
  return line;
}

// One run's stages (a θ, or a θ and seed), in order; with --jobs N up to N
// lanes run side by side.
struct Lane {
  study::Member member;
  size_t next_stage = 0;  // index into kRunStages of the stage to plan next
  pid_t pid = 0;          // the running stage's process, 0 when none
  study::Step step;       // the running stage
  std::string log;        // its output file when stages run side by side, else ""
  std::chrono::steady_clock::time_point t0;
};
const char* const kRunStages[] = {"train", "gamma", "niah", "kv"};
constexpr size_t kNRunStages = sizeof kRunStages / sizeof kRunStages[0];

// The last line a stage wrote to its log (progress bars end in \r, not \n).
std::string last_line(const std::string& log) {
  std::ifstream in(log, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 4096);
  std::string tail(size_t(size - from), '\0');
  in.seekg(from);
  in.read(tail.data(), std::streamsize(tail.size()));
  const size_t end = tail.find_last_not_of("\r\n \t");
  if (end == std::string::npos) return "";
  const size_t newline = tail.find_last_of("\r\n", end);
  const size_t begin = newline == std::string::npos ? 0 : newline + 1;
  std::string line = tail.substr(begin, end + 1 - begin);
  return line.size() > 120 ? line.substr(0, 117) + "..." : line;
}

void run_pilot(CLI::App& root, const std::string& file, const std::string& out, int jobs, double status_every,
               bool dry_run) {
  auto s = study::load_study(file);
  if (!out.empty()) s.out = out;
  check_keys(root, s);
  const std::string rerun = "re-run `ropelab pilot --config " + file + (out.empty() ? "" : " --out " + out) + "`";
  const auto members = study::members(s);
  const int total = static_cast<int>(members.size() * kNRunStages + 1);
  int n = 0;
  auto head = [&](const study::Step& step) {
    char h[96];
    std::snprintf(h, sizeof h, "pilot [%d/%d] %s %s: ", ++n, total, step.label.c_str(), step.stage.c_str());
    return std::string(h);
  };
  if (dry_run) {
    for (const auto& m : members)
      for (const char* stage : kRunStages) {
        const auto step = study::plan_step(s, stage, m);
        std::cout << head(step) << (step.skipped.empty() ? shell_line(step.args) : "skipped, " + step.skipped) << std::endl;
      }
    const auto report = study::plan_step(s, "report", {});
    std::cout << head(report) << (report.skipped.empty() ? shell_line(report.args) : "skipped, " + report.skipped) << std::endl;
    return;
  }
  io::make_dirs(s.out);
  const std::string log_path = s.out + "/pilot.jsonl";
  // Side by side, each stage writes to its own log and the threads are shared out.
  const bool side_by_side = jobs > 1 && members.size() > 1;
  const unsigned lanes_at_once = unsigned(std::min<size_t>(size_t(jobs), members.size()));
  std::map<std::string, std::string> env;
  if (side_by_side && std::getenv("OMP_NUM_THREADS") == nullptr)
    env["OMP_NUM_THREADS"] = std::to_string(std::max(1u, std::thread::hardware_concurrency() / lanes_at_once));

  ChildGroup children;
  std::string interrupted_in;          // the first stage a signal stopped
  std::vector<std::string> failures;   // stages that failed; their lanes stop, the others go on
  auto record_failure = [&](const std::string& what) {
    failures.push_back(what);
    std::cout << "pilot: " << what << "; the other runs go on" << std::endl;
  };
  // Plans the lane's next stages, printing those already complete, and starts the first that is not.
  auto advance = [&](Lane& lane) {
    for (; lane.next_stage < kNRunStages; ++lane.next_stage) {
      auto step = study::plan_step(s, kRunStages[lane.next_stage], lane.member);
      if (!step.skipped.empty()) {
        std::cout << head(step) << "skipped, " << step.skipped << std::endl;
        continue;
      }
      lane.log = side_by_side ? study::run_dir(s, lane.member) + "/" + step.stage + ".log" : "";
      if (!lane.log.empty()) {  // each attempt appends, under a line that says what runs
        io::make_dirs(study::run_dir(s, lane.member));
        const std::time_t now = std::time(nullptr);
        char when[32];
        std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
        std::ofstream(lane.log, std::ios::app) << "== " << when << " " << shell_line(step.args) << "\n";
      }
      std::cout << head(step) << shell_line(step.args) << (lane.log.empty() ? "" : "  (output: " + lane.log + ")")
                << std::endl;
      if (!step.partial.empty()) std::filesystem::remove(step.partial);  // an interrupted attempt restarts
      lane.step = step;
      lane.t0 = std::chrono::steady_clock::now();
      lane.pid = children.start(step.args, env, lane.log);
      ++lane.next_stage;
      return;
    }
  };
  // Records a finished stage; true when its lane may go on.
  auto finish = [&](Lane& lane, int status) {
    const auto& step = lane.step;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - lane.t0).count();
    lane.pid = 0;
    nlohmann::json record = {{"kind", "pilot_stage"}, {"study", s.name}, {"stage", step.stage},
                             {"theta", step.stage == "report" ? 0.0 : lane.member.theta},
                             {"command", shell_line(step.args)}, {"seconds", secs},
                             {"exit_code", exit_code_of(status)}, {"time", std::time(nullptr)}};
    if (step.stage != "report" && lane.member.seed) record["seed"] = *lane.member.seed;
    io::append_jsonl(log_path, record);
    if (interrupted(status)) {  // SIGINT/SIGTERM: training saved a checkpoint; a .partial eval is redone
      if (interrupted_in.empty()) interrupted_in = step.label + " " + step.stage;
      return false;
    }
    if (!succeeded(status)) {
      record_failure(step.label + " " + step.stage + " " + describe(status) + " (" + shell_line(step.args) + ")");
      return false;
    }
    if (!step.partial.empty()) io::commit_atomic(step.partial, step.final);
    if (side_by_side) std::cout << "pilot: " << step.label << " " << step.stage << " done in " << int(secs) << " s" << std::endl;
    return true;
  };

  std::vector<Lane> lanes(members.size());
  for (size_t i = 0; i < lanes.size(); ++i) lanes[i].member = members[i];
  size_t next_lane = 0;
  auto stopping = [&] { return children.signal_received() != 0 || !interrupted_in.empty(); };
  // An error of the pilot's own (a result file it cannot read or rename)
  // stops that run like a failed stage; the others go on.
  auto guarded = [&](Lane& lane, auto&& what) {
    try {
      what();
    } catch (const std::exception& e) {
      record_failure(study::member_label(lane.member) + ": " + e.what());
      lane.next_stage = kNRunStages;
    }
  };
  for (;;) {
    while (!stopping() && children.running() < jobs && next_lane < lanes.size()) {
      Lane& lane = lanes[next_lane++];
      guarded(lane, [&] { advance(lane); });
    }
    if (children.running() == 0) break;
    // Side by side, the stages' own progress is in their logs: every
    // `status_every` seconds the pilot prints each running stage's last line.
    const auto waited = side_by_side ? children.wait_any_for(status_every) : children.wait_any();
    if (!waited) {
      for (const auto& lane : lanes)
        if (lane.pid > 0)
          std::cout << "pilot: " << lane.step.label << " " << lane.step.stage << ": " << last_line(lane.log) << std::endl;
      continue;
    }
    const auto ended = *waited;
    for (auto& lane : lanes)
      if (lane.pid == ended.pid) {
        guarded(lane, [&] {
          if (finish(lane, ended.status) && !stopping()) advance(lane);
        });
        break;
      }
  }
  if (stopping())
    throw Error("pilot: interrupted" + (interrupted_in.empty() ? std::string(" between stages") : " during " + interrupted_in) +
                "; " + rerun + " to continue from there");
  if (!failures.empty()) {
    std::string all;
    for (const auto& f : failures) all += (all.empty() ? "" : "; ") + f;
    throw Error("pilot: " + all + "; fix the cause and " + rerun + " to continue from there");
  }
  Lane report;
  auto step = study::plan_step(s, "report", {});
  if (!step.skipped.empty()) {
    std::cout << head(step) << "skipped, " << step.skipped << std::endl;
  } else {
    std::cout << head(step) << shell_line(step.args) << std::endl;
    report.step = step;
    report.t0 = std::chrono::steady_clock::now();
    report.pid = children.start(step.args);
    const auto ended = children.wait_any();
    if (!finish(report, ended.status)) {
      if (!interrupted_in.empty()) throw Error("pilot: interrupted during the report; " + rerun + " to make it");
      throw Error("pilot: " + failures.back() + "; fix the cause and " + rerun + " to continue from there");
    }
  }
  std::cout << "pilot: study " << s.name << " complete in " << s.out << " (report: " << s.out
            << "/report/report.html; stage log: " << log_path << ")" << std::endl;
}

}  // namespace

void add_pilot_command(CLI::App& root) {
  auto* cmd = root.add_subcommand("pilot", "run a whole study (train per θ (and seed) -> γ-flow -> NIAH -> KV -> report), resumable");
  auto file = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dry = std::make_shared<bool>(false);
  auto jobs = std::make_shared<int>(1);
  auto status_every = std::make_shared<double>(60);
  cmd->add_option("--config", *file, "study file (TOML; see recipes/pilot-*.toml)")->required();
  cmd->add_option("--out", *out, "study directory (overrides the file's `out`)");
  cmd->add_option("--jobs", *jobs,
                  "runs (θ, or θ × seed) side by side (each stage's output then goes to RUN/STAGE.log, and the threads are "
                  "shared out unless OMP_NUM_THREADS is set)")
      ->check(in_range(1, 256))
      ->capture_default_str();
  cmd->add_option("--status-every", *status_every,
                  "with --jobs: seconds between lines showing each running stage's progress (its log's last line)")
      ->check(in_range(0.1, 86400))
      ->capture_default_str();
  cmd->add_flag("--dry-run", *dry, "print what would run (and what is already complete), run nothing");
  cmd->callback([&root, file, out, jobs, status_every, dry] { run_pilot(root, *file, *out, *jobs, *status_every, *dry); });
}

}  // namespace ropelab::cli
