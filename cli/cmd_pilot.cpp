// `ropelab pilot --config STUDY.toml`: runs a whole study as ordinary ropelab
// commands (study/pilot.h plans them), each in its own process, printing each
// command so any stage can be reproduced by hand. Re-running continues where
// an interrupted study stopped.
#include <CLI/CLI.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
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

void run_pilot(CLI::App& root, const std::string& file, const std::string& out, bool dry_run) {
  auto s = study::load_study(file);
  if (!out.empty()) s.out = out;
  check_keys(root, s);
  if (!dry_run) io::make_dirs(s.out);
  const std::string log_path = s.out + "/pilot.jsonl";
  const int total = static_cast<int>(s.thetas.size() * 4 + 1);
  int n = 0;
  auto do_step = [&](const std::string& stage, double theta) {
    const auto step = study::plan_step(s, stage, theta);
    char head[96];
    std::snprintf(head, sizeof head, "pilot [%d/%d] %s %s: ", ++n, total, step.label.c_str(), stage.c_str());
    if (!step.skipped.empty()) {
      std::cout << head << "skipped, " << step.skipped << std::endl;
      return;
    }
    std::cout << head << shell_line(step.args) << std::endl;
    if (dry_run) return;
    if (!step.partial.empty()) std::filesystem::remove(step.partial);  // an interrupted attempt restarts
    const auto t0 = std::chrono::steady_clock::now();
    const int status = run_self(step.args);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    io::append_jsonl(log_path, {{"kind", "pilot_stage"}, {"study", s.name}, {"stage", stage}, {"theta", stage == "report" ? 0.0 : theta},
                                {"command", shell_line(step.args)}, {"seconds", secs},
                                {"exit_code", exit_code_of(status)}, {"time", std::time(nullptr)}});
    if (interrupted(status))  // SIGINT/SIGTERM: training saved a checkpoint; a .partial eval is redone
      throw Error("pilot: interrupted during " + step.label + " " + stage + "; re-run `ropelab pilot --config " + file +
                  (out.empty() ? "" : " --out " + out) + "` to continue from there");
    if (!succeeded(status))
      throw Error("pilot: " + step.label + " " + stage + " " + describe(status) + " (" + shell_line(step.args) +
                  "); fix the cause and re-run `ropelab pilot --config " + file + (out.empty() ? "" : " --out " + out) +
                  "` to continue from there");
    if (!step.partial.empty()) io::commit_atomic(step.partial, step.final);
  };
  for (double theta : s.thetas)
    for (const char* stage : {"train", "gamma", "niah", "kv"}) do_step(stage, theta);
  do_step("report", 0);
  if (!dry_run)
    std::cout << "pilot: study " << s.name << " complete in " << s.out << " (report: " << s.out
              << "/report/report.html; stage log: " << log_path << ")" << std::endl;
}

}  // namespace

void add_pilot_command(CLI::App& root) {
  auto* cmd = root.add_subcommand("pilot", "run a whole study (train per θ -> γ-flow -> NIAH -> KV -> report), resumable");
  auto file = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dry = std::make_shared<bool>(false);
  cmd->add_option("--config", *file, "study file (TOML; see recipes/pilot-*.toml)")->required();
  cmd->add_option("--out", *out, "study directory (overrides the file's `out`)");
  cmd->add_flag("--dry-run", *dry, "print what would run (and what is already complete), run nothing");
  cmd->callback([&root, file, out, dry] { run_pilot(root, *file, *out, *dry); });
}

}  // namespace ropelab::cli
