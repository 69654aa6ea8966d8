#include "study/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/io.h"
#include "common/run_dir.h"
#include "common/subprocess.h"

namespace ropelab::study {

std::string shell_line(const std::vector<std::string>& args) {
  std::string line = "ropelab";
  for (const auto& a : args) line += " " + (a.find_first_of(" \"'<>") == std::string::npos ? a : "'" + a + "'");
  return line;
}

namespace {

// One run's stages (a θ, or a θ and seed), in order; with --jobs N up to N
// lanes run side by side.
struct Lane {
  Member member;
  size_t next_stage = 0;  // index into run_stages() of the stage to plan next
  pid_t pid = 0;          // the running stage's process, 0 when none
  Step step;              // the running stage
  std::string log;        // its output file when stages run side by side, else ""
  std::chrono::steady_clock::time_point t0;
};

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

// Appends a line saying what runs to a stage's log (each attempt appends).
void mark_log(const std::string& log, const Step& step) {
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  std::ofstream(log, std::ios::app) << "== " << when << " " << shell_line(step.args) << "\n";
}

class StudyRun {
 public:
  StudyRun(const Study& s, const RunOptions& o)
      : s_(s), o_(o), members_(members(s)), total_(int(members_.size() * run_stages().size() + 1)),
        rerun_("re-run `ropelab pilot --config " + s.file + (o.out_flag.empty() ? "" : " --out " + o.out_flag) + "`"),
        log_path_(rundir::study_log_path(s.out)), side_by_side_(o.jobs > 1 && members_.size() > 1) {}

  void dry_run();
  void run();

 private:
  std::string head(const Step& step);
  void share_threads();
  void run_lanes();
  void print_progress() const;
  void advance(Lane& lane);
  bool finish(Lane& lane, int status);
  void record_failure(const std::string& what);
  bool stopping() const { return children_->signal_received() != 0 || !interrupted_in_.empty(); }
  template <class F>
  void guarded(Lane& lane, F&& what);
  void throw_if_stopped_or_failed() const;
  void run_report();

  const Study& s_;
  const RunOptions& o_;
  const std::vector<Member> members_;
  const int total_;                     // stages in all, for "[n/total]"
  const std::string rerun_, log_path_;  // the hint in error messages; OUT/pilot.jsonl
  const bool side_by_side_;             // each stage writes to its own log and the threads are shared out
  int n_ = 0;                           // stages printed so far
  std::map<std::string, std::string> env_;
  std::unique_ptr<ChildGroup> children_;
  std::vector<Lane> lanes_;
  std::string interrupted_in_;         // the first stage a signal stopped
  std::vector<std::string> failures_;  // stages that failed; their lanes stop, the others go on
};

std::string StudyRun::head(const Step& step) {
  char h[96];
  std::snprintf(h, sizeof h, "pilot [%d/%d] %s %s: ", ++n_, total_, step.label.c_str(), step.stage.c_str());
  return h;
}

void StudyRun::dry_run() {
  for (const auto& m : members_)
    for (const auto& stage : run_stages()) {
      const auto step = plan_step(s_, stage, m);
      std::cout << head(step) << (step.skipped.empty() ? shell_line(step.args) : "skipped, " + step.skipped) << std::endl;
    }
  const auto report = plan_step(s_, "report", {});
  std::cout << head(report) << (report.skipped.empty() ? shell_line(report.args) : "skipped, " + report.skipped)
            << std::endl;
}

void StudyRun::run() {
  io::make_dirs(s_.out);
  share_threads();
  children_ = std::make_unique<ChildGroup>();
  run_lanes();
  throw_if_stopped_or_failed();
  run_report();
  std::cout << "pilot: study " << s_.name << " complete in " << s_.out << " (report: " << rundir::study_report_dir(s_.out)
            << "/report.html; stage log: " << log_path_ << ")" << std::endl;
}

void StudyRun::share_threads() {
  const unsigned lanes_at_once = unsigned(std::min<size_t>(size_t(o_.jobs), members_.size()));
  if (side_by_side_ && std::getenv("OMP_NUM_THREADS") == nullptr)
    env_["OMP_NUM_THREADS"] = std::to_string(std::max(1u, std::thread::hardware_concurrency() / lanes_at_once));
}

void StudyRun::record_failure(const std::string& what) {
  failures_.push_back(what);
  std::cout << "pilot: " << what << "; the other runs go on" << std::endl;
}

// An error of the pilot's own (a result file it cannot read or rename)
// stops that run like a failed stage; the others go on.
template <class F>
void StudyRun::guarded(Lane& lane, F&& what) {
  try {
    what();
  } catch (const std::exception& e) {
    record_failure(member_label(lane.member) + ": " + e.what());
    lane.next_stage = run_stages().size();
  }
}

// Starts lanes while there is room, and finishes and advances them as their stages end.
void StudyRun::run_lanes() {
  lanes_.resize(members_.size());
  for (size_t i = 0; i < lanes_.size(); ++i) lanes_[i].member = members_[i];
  size_t next_lane = 0;
  for (;;) {
    while (!stopping() && children_->running() < o_.jobs && next_lane < lanes_.size()) {
      Lane& lane = lanes_[next_lane++];
      guarded(lane, [&] { advance(lane); });
    }
    if (children_->running() == 0) break;
    // Side by side, the stages' own progress is in their logs: every
    // `status_every` seconds the pilot prints each running stage's last line.
    const auto waited = side_by_side_ ? children_->wait_any_for(o_.status_every) : children_->wait_any();
    if (!waited) {
      print_progress();
      continue;
    }
    for (auto& lane : lanes_)
      if (lane.pid == waited->pid) {
        guarded(lane, [&] {
          if (finish(lane, waited->status) && !stopping()) advance(lane);
        });
        break;
      }
  }
}

void StudyRun::print_progress() const {
  for (const auto& lane : lanes_)
    if (lane.pid > 0)
      std::cout << "pilot: " << lane.step.label << " " << lane.step.stage << ": " << last_line(lane.log) << std::endl;
}

// Plans the lane's next stages, printing those already complete, and starts the first that is not.
void StudyRun::advance(Lane& lane) {
  const auto& stages = run_stages();
  for (; lane.next_stage < stages.size(); ++lane.next_stage) {
    auto step = plan_step(s_, stages[lane.next_stage], lane.member);
    if (!step.skipped.empty()) {
      std::cout << head(step) << "skipped, " << step.skipped << std::endl;
      continue;
    }
    lane.log = side_by_side_ ? rundir::stage_log_path(run_dir(s_, lane.member), step.stage) : "";
    if (!lane.log.empty()) {
      io::make_dirs(run_dir(s_, lane.member));
      mark_log(lane.log, step);
    }
    std::cout << head(step) << shell_line(step.args) << (lane.log.empty() ? "" : "  (output: " + lane.log + ")")
              << std::endl;
    if (!step.partial.empty()) std::filesystem::remove(step.partial);  // an interrupted attempt restarts
    lane.step = step;
    lane.t0 = std::chrono::steady_clock::now();
    lane.pid = children_->start(step.args, env_, lane.log);
    ++lane.next_stage;
    return;
  }
}

// Records a finished stage; true when its lane may go on.
bool StudyRun::finish(Lane& lane, int status) {
  const auto& step = lane.step;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - lane.t0).count();
  lane.pid = 0;
  nlohmann::json record = {{"kind", "pilot_stage"}, {"study", s_.name}, {"stage", step.stage},
                           {"theta", step.stage == "report" ? 0.0 : lane.member.theta},
                           {"command", shell_line(step.args)}, {"seconds", secs},
                           {"exit_code", exit_code_of(status)}, {"time", std::time(nullptr)}};
  if (step.stage != "report" && lane.member.seed) record["seed"] = *lane.member.seed;
  io::append_jsonl(log_path_, record);
  if (interrupted(status)) {  // SIGINT/SIGTERM: training saved a checkpoint; a .partial eval is redone
    if (interrupted_in_.empty()) interrupted_in_ = step.label + " " + step.stage;
    return false;
  }
  if (!succeeded(status)) {
    record_failure(step.label + " " + step.stage + " " + describe(status) + " (" + shell_line(step.args) + ")");
    return false;
  }
  if (!step.partial.empty()) io::commit_atomic(step.partial, step.final);
  if (side_by_side_)
    std::cout << "pilot: " << step.label << " " << step.stage << " done in " << int(secs) << " s" << std::endl;
  return true;
}

void StudyRun::throw_if_stopped_or_failed() const {
  if (stopping())
    throw Error("pilot: interrupted" +
                (interrupted_in_.empty() ? std::string(" between stages") : " during " + interrupted_in_) + "; " +
                rerun_ + " to continue from there");
  if (!failures_.empty()) {
    std::string all;
    for (const auto& f : failures_) all += (all.empty() ? "" : "; ") + f;
    throw Error("pilot: " + all + "; fix the cause and " + rerun_ + " to continue from there");
  }
}

void StudyRun::run_report() {
  Lane report;
  auto step = plan_step(s_, "report", {});
  if (!step.skipped.empty()) {
    std::cout << head(step) << "skipped, " << step.skipped << std::endl;
    return;
  }
  std::cout << head(step) << shell_line(step.args) << std::endl;
  report.step = step;
  report.t0 = std::chrono::steady_clock::now();
  report.pid = children_->start(step.args);
  const auto ended = children_->wait_any();
  if (!finish(report, ended.status)) {
    if (!interrupted_in_.empty()) throw Error("pilot: interrupted during the report; " + rerun_ + " to make it");
    throw Error("pilot: " + failures_.back() + "; fix the cause and " + rerun_ + " to continue from there");
  }
}

}  // namespace

void run_study(const Study& s, const RunOptions& options) {
  StudyRun run(s, options);
  if (options.dry_run) run.dry_run();
  else run.run();
}

}  // namespace ropelab::study
