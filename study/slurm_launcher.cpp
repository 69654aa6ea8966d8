#include "study/slurm_launcher.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/io.h"
#include "common/run_dir.h"
#include "common/subprocess.h"
#include "study/runner.h"
#include "study/slurm_client.h"

namespace ropelab::study {
namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------- settings

const std::vector<std::string>& slurm_keys() {
  static const std::vector<std::string> keys = {
      "partition", "account", "qos", "mem", "time", "time-train", "time-gamma", "time-niah", "time-kv", "time-report",
      "nodes", "gpus-per-node", "cpus-per-task", "signal-seconds", "sbatch-args", "setup", "ropelab-bin"};
  return keys;
}

SlurmSettings slurm_settings(const Study& s, const std::vector<std::pair<std::string, std::string>>& flags) {
  SlurmSettings r;
  auto apply = [&](const std::string& key, const std::string& value, const std::string& where) {
    auto bad = [&](const std::string& what) { return Error(where + ": " + what); };
    auto integer = [&](int lo, int hi) {
      size_t used = 0;
      long v = 0;
      try { v = std::stol(value, &used); } catch (...) { used = 0; }
      if (used != value.size() || v < lo || v > hi)
        throw bad("expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got \"" + value + "\"");
      return int(v);
    };
    auto text = [&] {
      if (value.empty() || value.find_first_of(" \t\n'\"") != std::string::npos)
        throw bad("expected one word without spaces or quotes, got \"" + value + "\"");
      return value;
    };
    if (key == "partition") r.partition = text();
    else if (key == "account") r.account = text();
    else if (key == "qos") r.qos = text();
    else if (key == "mem") r.mem = text();
    else if (key == "time") r.time[""] = text();
    else if (key.rfind("time-", 0) == 0 && std::find(run_stages().begin(), run_stages().end(), key.substr(5)) != run_stages().end())
      r.time[key.substr(5)] = text();
    else if (key == "time-report") r.time["report"] = text();
    else if (key == "nodes") r.nodes = integer(1, 100000);
    else if (key == "gpus-per-node") r.gpus_per_node = integer(0, 1024);
    else if (key == "cpus-per-task") r.cpus_per_task = integer(1, 100000);
    else if (key == "signal-seconds") r.signal_seconds = integer(0, 65535);
    else if (key == "sbatch-args") {
      if (!value.empty()) {
        if (value.find('\n') != std::string::npos) throw bad("an sbatch argument must be one line");
        r.sbatch_args.push_back(value);
      }
    } else if (key == "setup") {
      if (!value.empty()) r.setup.push_back(value);
    } else if (key == "ropelab-bin") r.ropelab_bin = text();
    else {
      std::string all;
      for (const auto& k : slurm_keys()) all += (all.empty() ? "" : ", ") + k;
      throw bad("unknown SLURM setting (" + all + ")");
    }
  };
  for (const auto& [k, v] : s.slurm) apply(k, v, s.file + ": key \"slurm." + k + "\"");
  for (const auto& [k, v] : flags) apply(k, v, "--" + k);
  return r;
}

// ---------------------------------------------------------------- stages

namespace {

// One stage of the study as a job.
struct StageRef {
  std::string key;     // theta-1e4-seed-1.train, ..., report
  std::string stage;   // train | gamma | niah | kv | report
  std::string label;   // member_label, or "study"
  Member member;       // ignored for the report
  std::vector<std::string> after;  // keys it needs (afterok; the report: afterany on every other)
};

std::string slurm_dir(const Study& s) { return s.out + "/slurm"; }
std::string jobs_path(const Study& s) { return slurm_dir(s) + "/jobs.json"; }
std::string script_path(const Study& s, const std::string& key) { return slurm_dir(s) + "/" + key + ".sbatch"; }
std::string log_path(const Study& s, const std::string& key, long job) {
  return slurm_dir(s) + "/logs/" + key + "." + std::to_string(job) + ".log";
}
std::string report_record_path(const Study& s) { return slurm_dir(s) + "/report.json"; }

// The stages the study runs (those its file skips left out), in plan order.
std::vector<StageRef> study_stages(const Study& s) {
  std::vector<StageRef> all;
  std::vector<std::string> every;
  for (const auto& m : members(s)) {
    const std::string base = fs::path(run_dir(s, m)).filename().string();
    std::vector<std::string> before;  // train and gamma of this member, when run
    for (const auto& stage : run_stages()) {
      if (skipped_by_file(s, stage)) continue;
      StageRef r{base + "." + stage, stage, member_label(m), m, {}};
      if (stage != "train") r.after = before;
      if (stage == "train" || stage == "gamma") before.push_back(r.key);
      every.push_back(r.key);
      all.push_back(r);
    }
  }
  if (!skipped_by_file(s, "report")) all.push_back({"report", "report", "study", {}, every});
  return all;
}

const StageRef& find_stage(const std::vector<StageRef>& stages, const std::string& key, const Study& s) {
  for (const auto& r : stages)
    if (r.key == key) return r;
  throw Error("study " + s.file + " has no stage " + key + " (a job script from another version of the study file?)");
}

// Where a training stands, e.g. "at step 40 of 400", or "" when it has not started.
std::string train_progress(const Study& s, const Member& m) {
  const std::string dir = run_dir(s, m);
  try {
    if (!io::exists(rundir::config_path(dir))) return "";
    const auto cfg = io::read_json(rundir::config_path(dir));
    const auto manifest = rundir::read_manifest(dir);
    const int64_t max_steps = cfg.value("max_steps", int64_t(-1));
    return manifest.empty() ? "with no checkpoint yet"
                            : "at step " + std::to_string(manifest.back().step) + " of " + std::to_string(max_steps);
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::vector<std::string> missing_run_stages(const Study& s, const std::vector<StageRef>& stages);

// Whether a stage is complete on disk; `why` says what is there or what stands in the way.
bool complete(const Study& s, const StageRef& r, const std::vector<StageRef>& stages, std::string* why = nullptr) {
  if (r.stage == "report") {
    if (!io::exists(report_record_path(s))) return false;
    try {
      const auto rec = io::read_json(report_record_path(s));
      if (!rec.value("missing", json::array()).empty()) {
        if (why) *why = "made without every stage";
        return false;
      }
    } catch (const std::exception&) {
      return false;
    }
    return missing_run_stages(s, stages).empty();
  }
  try {
    const auto step = plan_step(s, r.stage, r.member);
    if (why) *why = step.skipped;
    return !step.skipped.empty();
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return false;
  }
}

std::vector<std::string> missing_run_stages(const Study& s, const std::vector<StageRef>& stages) {
  std::vector<std::string> missing;
  for (const auto& r : stages)
    if (r.stage != "report" && !complete(s, r, stages)) missing.push_back(r.label + " " + r.stage);
  return missing;
}

// ---------------------------------------------------------------- jobs.json

json read_jobs(const Study& s) {
  if (!io::exists(jobs_path(s))) return json{{"stages", json::object()}};
  auto j = io::read_json(jobs_path(s));
  if (!j.contains("stages") || !j["stages"].is_object()) throw Error(jobs_path(s) + ": no \"stages\" object");
  return j;
}

long recorded_job(const json& jobs, const std::string& key) {
  const auto& st = jobs["stages"];
  if (!st.contains(key) || !st[key].contains("job")) return 0;
  return st[key]["job"].get<long>();
}

std::vector<long> recorded_jobs(const json& jobs) {
  std::vector<long> ids;
  for (const auto& [key, v] : jobs["stages"].items())
    if (v.contains("job")) ids.push_back(v["job"].get<long>());
  return ids;
}

// ---------------------------------------------------------------- the lock

// OUT/slurm/lock, held (flock, not waiting) while one submission or cancel
// drives the study directory; it holds the driver's pid for the message.
class DriveLock {
 public:
  explicit DriveLock(const Study& s) {
    io::make_dirs(slurm_dir(s));
    const std::string path = slurm_dir(s) + "/lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char buf[64] = {0};
      const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      std::string pid = n > 0 ? std::string(buf, size_t(n)) : "";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      ::close(fd_);
      throw Error("study directory " + s.out + " is being driven by another submission" +
                  (pid.empty() ? "" : " (pid " + pid + ")") + ", which holds " + path +
                  "; wait for it to finish (or stop it) and try again");
    }
    const std::string me = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0) {
      const ssize_t w = ::pwrite(fd_, me.data(), me.size(), 0);
      (void)w;
    }
  }
  ~DriveLock() {
    if (::ftruncate(fd_, 0) != 0) { /* the lock goes with the descriptor anyway */ }
    ::close(fd_);
  }
  DriveLock(const DriveLock&) = delete;
  DriveLock& operator=(const DriveLock&) = delete;

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------- job scripts

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

std::string job_script(const Study& s, const SlurmSettings& cfg, const StageRef& r, const std::string& bin) {
  const bool train = r.stage == "train";
  const std::string out = absolute(s.out);
  const std::string what = r.stage == "report" ? "the report" : r.label + " " + r.stage;
  std::ostringstream o;
  o << "#!/bin/bash\n"
    << "# " << what << " of study " << s.name << " (" << absolute(s.file) << "), written by\n"
    << "# `ropelab pilot --launcher slurm`, which submits it with --dependency on the stages it needs.\n"
    << "# By hand: sbatch " << script_path(s, r.key) << "\n"
    << "# It plans the stage when it starts, from what is on disk then (a training resumes from its\n"
    << "# last checkpoint), runs it under srun, and records it in OUT/pilot.jsonl; it exits non-zero\n"
    << "# unless the stage is complete (a training stopped at the time limit resumes when resubmitted).\n";
  auto directive = [&](const std::string& d) { o << "#SBATCH " << d << "\n"; };
  directive("--job-name=pilot-" + s.name + "-" + r.key);
  directive("--output=" + out + "/slurm/logs/" + r.key + ".%j.log");
  directive("--chdir=" + fs::current_path().string());
  if (train) {
    directive("--nodes=" + std::to_string(cfg.nodes));
    directive("--ntasks-per-node=" + std::to_string(std::max(1, cfg.gpus_per_node)));
    if (cfg.gpus_per_node > 0) directive("--gpus-per-node=" + std::to_string(cfg.gpus_per_node));
  } else {
    directive("--nodes=1");
    directive("--ntasks=1");
    if (cfg.gpus_per_node > 0 && r.stage != "report") directive("--gpus=1");
  }
  if (cfg.cpus_per_task > 0) directive("--cpus-per-task=" + std::to_string(cfg.cpus_per_task));
  if (!cfg.mem.empty()) directive("--mem=" + cfg.mem);
  const auto t = cfg.time.count(r.stage) ? cfg.time.at(r.stage) : cfg.time.count("") ? cfg.time.at("") : "";
  if (!t.empty()) directive("--time=" + t);
  if (!cfg.partition.empty()) directive("--partition=" + cfg.partition);
  if (!cfg.account.empty()) directive("--account=" + cfg.account);
  if (!cfg.qos.empty()) directive("--qos=" + cfg.qos);
  if (cfg.signal_seconds > 0) directive("--signal=TERM@" + std::to_string(cfg.signal_seconds));
  for (const auto& a : cfg.sbatch_args) directive(a);
  o << "set -uo pipefail\n";
  for (const auto& line : cfg.setup) o << line << "\n";
  o << "ropelab=" << quoted(bin) << "\n"
    << "study=(pilot --config " << quoted(absolute(s.file)) << " --out " << quoted(out) << ")\n"
    << "key=" << r.key << "\n"
    << "args=" << quoted(out + "/slurm/run") << "/$key.${SLURM_JOB_ID:-by-hand}.args\n"
    << "# SIGTERM (scancel, or --signal before the time limit) reaches the stage itself; this shell\n"
    << "# waits for it to save and stop, then records how it ended.\n"
    << "trap 'echo \"pilot: $key: SIGTERM: the stage stops (a training saves a checkpoint)\"' TERM INT\n"
    << "\"$ropelab\" \"${study[@]}\" --job-plan \"$key\" --args-file \"$args\" || exit $?\n"
    << "[ -s \"$args\" ] || exit 0  # complete already\n"
    << "mapfile -d '' -t stage < \"$args\"\n";
  if (train)
    o << "# Data-parallel over the tasks (one per GPU): ranks from SLURM_PROCID/NTASKS/LOCALID, rank 0 hosts the store.\n"
      << "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
      << "export MASTER_PORT=${MASTER_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 20000))}\n";
  o << "if [ -n \"${SLURM_CPUS_PER_TASK:-}\" ]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n"
    << "start=$SECONDS\n"
    << "srun --kill-on-bad-exit=1 \"$ropelab\" \"${stage[@]}\"\n"
    << "rc=$?\n"
    << "exec \"$ropelab\" \"${study[@]}\" --job-finish \"$key\" --args-file \"$args\" --exit-code \"$rc\" "
       "--seconds \"$((SECONDS - start))\"\n";
  return o.str();
}

std::string ropelab_bin(const SlurmSettings& cfg) {
  if (!cfg.ropelab_bin.empty()) return absolute(cfg.ropelab_bin);
  return self_path();
}

// The display width of UTF-8 text (θ is one column).
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}
std::string pad(const std::string& s, size_t w) { return s + std::string(w > width(s) ? w - width(s) : 0, ' '); }

bool is_queued_state(const std::string& state) { return state != "COMPLETING"; }

// Waits (up to `seconds`) while any of `ids` is still completing; returns the queue then.
std::map<long, slurm::Queued> settled_queue(const std::vector<long>& ids, double seconds) {
  auto q = slurm::queued(ids);
  const auto t0 = std::chrono::steady_clock::now();
  auto completing = [&] {
    return std::any_of(q.begin(), q.end(), [](const auto& kv) { return kv.second.state == "COMPLETING"; });
  };
  while (completing() && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    q = slurm::queued(ids);
  }
  return q;
}

}  // namespace

// ---------------------------------------------------------------- submit

void submit_study(const Study& s, const SlurmSettings& cfg, const std::string& rerun, bool dry_run) {
  if (!dry_run) slurm::require_commands();
  const auto stages = study_stages(s);
  std::optional<DriveLock> lock;
  if (!dry_run) lock.emplace(s);
  json jobs = read_jobs(s);
  std::map<long, slurm::Queued> queue;
  if (!dry_run || !slurm::find_on_path("squeue").empty()) queue = settled_queue(recorded_jobs(jobs), 60);

  // What each stage needs: nothing (complete), its queued job, or a new job.
  enum class Plan { done, queued, submit };
  std::map<std::string, Plan> plan;
  std::map<std::string, long> job_of;  // queued or newly submitted
  std::vector<long> stale_report;      // a queued report job that new stages would outrun
  bool any_run_stage = false;
  for (const auto& r : stages) {
    const long job = recorded_job(jobs, r.key);
    const bool queued = job > 0 && queue.count(job) && is_queued_state(queue.at(job).state);
    if (r.stage == "report") {
      if (queued && any_run_stage) {
        stale_report.push_back(job);
        plan[r.key] = Plan::submit;
      } else if (queued) {
        plan[r.key] = Plan::queued;
        job_of[r.key] = job;
      } else {
        plan[r.key] = any_run_stage || !complete(s, r, stages) ? Plan::submit : Plan::done;
      }
      continue;
    }
    if (complete(s, r, stages)) {
      plan[r.key] = Plan::done;
    } else if (queued) {
      plan[r.key] = Plan::queued;
      job_of[r.key] = job;
    } else {
      plan[r.key] = Plan::submit;
      any_run_stage = true;
    }
  }

  const std::string bin = ropelab_bin(cfg);
  std::vector<const StageRef*> to_submit;
  for (const auto& r : stages)
    if (plan[r.key] == Plan::submit) to_submit.push_back(&r);
  if (to_submit.empty()) {
    std::cout << "pilot: nothing to submit: every stage of study " << s.name << " is complete or queued" << std::endl;
    std::cout << study_status(s);
    return;
  }

  // Every script written first; then SLURM asked (--test-only) about each
  // kind of job before any is submitted.
  io::make_dirs(slurm_dir(s) + "/logs");
  io::make_dirs(slurm_dir(s) + "/run");
  for (const auto* r : to_submit) io::write_atomic(script_path(s, r->key), job_script(s, cfg, *r, bin));
  if (dry_run) {
    for (const auto& r : stages) {
      const auto p = plan[r.key];
      std::cout << "pilot (slurm, dry run): " << r.label << " " << r.stage << ": "
                << (p == Plan::done ? "complete" : p == Plan::queued ? "queued as job " + std::to_string(job_of[r.key])
                                                                     : "would submit " + script_path(s, r.key))
                << std::endl;
    }
    return;
  }
  std::set<std::string> tested;
  for (const auto* r : to_submit) {
    if (!tested.insert(r->stage).second) continue;
    const auto refusal = slurm::test_submission(script_path(s, r->key));
    if (!refusal.empty())
      throw Error("SLURM refuses the " + r->stage + " job (sbatch --test-only " + script_path(s, r->key) + "): " + refusal +
                  "; nothing was submitted (check the [slurm] settings or flags: partition, account, qos, time, gpus-per-node)");
  }

  // Submit in plan order; dependencies only on jobs just seen queued or submitted now.
  std::vector<long> submitted;
  json updated = jobs;
  try {
    if (!stale_report.empty()) slurm::cancel(stale_report);
    for (const auto* r : to_submit) {
      std::vector<std::string> after;
      for (const auto& k : r->after)
        if (job_of.count(k)) after.push_back(std::to_string(job_of[k]));
      std::vector<std::string> extra;
      if (!after.empty()) {
        std::string dep = r->stage == "report" ? "afterany" : "afterok";
        for (const auto& a : after) dep += ":" + a;
        extra = {"--dependency=" + dep, "--kill-on-invalid-dep=yes"};
      }
      const long id = slurm::submit(script_path(s, r->key), extra);
      submitted.push_back(id);
      job_of[r->key] = id;
      auto& e = updated["stages"][r->key];
      std::vector<long> earlier;
      if (e.is_object()) {
        earlier = e.value("earlier_jobs", std::vector<long>{});
        if (e.contains("job")) earlier.push_back(e["job"].get<long>());
      }
      json after_ids = json::array();
      for (const auto& a : after) after_ids.push_back(std::stol(a));
      e = {{"job", id}, {"stage", r->stage}, {"label", r->label}, {"script", script_path(s, r->key)},
           {"log", log_path(s, r->key, id)}, {"after", after_ids}, {"submitted", std::time(nullptr)},
           {"earlier_jobs", earlier}};
      std::cout << "pilot (slurm): " << r->label << " " << r->stage << ": job " << id
                << (after.empty() ? "" : std::string(" after ") + (r->stage == "report" ? "any end of " : "") +
                                             std::to_string(after.size()) + " job" + (after.size() > 1 ? "s" : ""))
                << " (" << script_path(s, r->key) << ")" << std::endl;
    }
  } catch (const std::exception& e) {
    try {
      slurm::cancel(submitted);
    } catch (const Error&) {
    }
    throw Error(std::string(e.what()) + "; the " + std::to_string(submitted.size()) +
                " job(s) submitted before it were cancelled, so nothing is left half-submitted");
  }
  updated["study"] = s.name;
  updated["file"] = absolute(s.file);
  updated["out"] = absolute(s.out);
  updated["ropelab"] = bin;
  io::write_json_atomic(jobs_path(s), updated);
  std::cout << "pilot (slurm): " << submitted.size() << " job(s) submitted for study " << s.name << " (" << jobs_path(s)
            << "); follow them with `" << rerun << " --status`" << std::endl;
}

// ---------------------------------------------------------------- status

std::string study_status(const Study& s) {
  const auto stages = study_stages(s);
  const json jobs = read_jobs(s);
  const bool can_ask = !slurm::find_on_path("squeue").empty() && !slurm::find_on_path("scontrol").empty();
  const auto queue = can_ask ? slurm::queued(recorded_jobs(jobs)) : std::map<long, slurm::Queued>{};
  std::map<long, std::string> key_of_job;
  for (const auto& [key, v] : jobs["stages"].items())
    if (v.contains("job")) key_of_job[v["job"].get<long>()] = key;
  std::map<std::string, const StageRef*> by_key;
  for (const auto& r : stages) by_key[r.key] = &r;

  std::ostringstream o;
  o << "pilot --status: study " << s.name << " in " << s.out
    << (io::exists(jobs_path(s)) ? " (jobs: " + jobs_path(s) + ")" : " (no SLURM submission yet)") << "\n";
  std::map<std::string, int> counts;
  size_t label_w = 5;
  for (const auto& r : stages) label_w = std::max(label_w, width(r.label));
  for (const auto& r : stages) {
    const long job = recorded_job(jobs, r.key);
    const std::string job_s = job > 0 ? "job " + std::to_string(job) : "";
    std::string why;
    std::string word, detail;
    const bool done = complete(s, r, stages, &why);
    if (done) {
      word = "done";
      detail = job_s;
    } else if (job > 0 && queue.count(job) && is_queued_state(queue.at(job).state)) {
      const auto& q = queue.at(job);
      word = q.state == "PENDING" ? "pending" : "running";
      detail = job_s + (q.state == "PENDING" || q.state == "RUNNING" ? "" : " " + q.state) +
               (q.state == "PENDING" ? " (" + q.reason + ")" : "") + ", log " + log_path(s, r.key, job);
    } else if (job > 0) {
      const auto info = can_ask ? slurm::job_info(job) : std::nullopt;
      const std::string log = log_path(s, r.key, job);
      const std::string progress = r.stage == "train" ? train_progress(s, r.member) : "";
      const std::string at = progress.empty() ? "" : "; training " + progress;
      if (!info) {
        word = "not done";
        detail = job_s + " is no longer known to SLURM" + at + "; log " + log;
      } else if (info->state == "CANCELLED" && info->reason.find("Dependency") != std::string::npos) {
        word = "cancelled";
        std::string cause;
        const auto& e = jobs["stages"][r.key];
        for (const auto& a : e.value("after", std::vector<long>{}))
          if (key_of_job.count(a) && by_key.count(key_of_job[a]) && !complete(s, *by_key[key_of_job[a]], stages)) {
            const auto* dep = by_key[key_of_job[a]];
            cause = dep->label + " " + dep->stage + ", job " + std::to_string(a);
            break;
          }
        detail = job_s + ": a stage it needs did not complete" + (cause.empty() ? "" : " (" + cause + ")");
      } else if (info->state == "CANCELLED") {
        word = "cancelled";
        detail = job_s + at + ", log " + log;
      } else if (info->state == "COMPLETED" && r.stage == "report") {
        word = "partial";
        detail = job_s + ", report in " + rundir::study_report_dir(s.out);
      } else if (info->state == "COMPLETED") {
        word = "stopped";
        detail = job_s + " ended but the stage is not complete" + (why.empty() ? "" : " (" + why + ")") + at +
                 "; submitting again resumes it; log " + log;
      } else {
        word = "failed";
        std::string code = info->exit_code;
        const size_t colon = code.find(':');
        if (colon != std::string::npos) {
          const std::string sig = code.substr(colon + 1);
          code = sig != "0" ? code.substr(0, colon) + " (signal " + sig + ")" : code.substr(0, colon);
        }
        detail = job_s + " " + info->state + ", exit code " + code + at + ", log " + log;
      }
    } else {
      word = "not submitted";
      if (!why.empty() && r.stage != "report") detail = why;
    }
    if (r.stage == "report" && done) {
      detail = job_s;
    } else if (r.stage == "report" && io::exists(report_record_path(s)) && word != "pending" && word != "running") {
      try {
        const auto rec = io::read_json(report_record_path(s));
        const auto missing = rec.value("missing", std::vector<std::string>{});
        if (!missing.empty()) {
          std::string m;
          for (const auto& x : missing) m += (m.empty() ? "" : ", ") + x;
          detail += std::string(detail.empty() ? "" : "; ") + "the last report was made without: " + m;
        }
      } catch (const std::exception&) {
      }
    }
    ++counts[word];
    o << "  " << pad(r.label, label_w) << "  " << pad(r.stage, 7) << pad(word, 10) << " " << detail << "\n";
  }
  std::string summary;
  for (const char* w : {"done", "partial", "running", "pending", "failed", "cancelled", "stopped", "not done", "not submitted"})
    if (counts.count(w)) summary += (summary.empty() ? "" : ", ") + std::to_string(counts[w]) + " " + w;
  o << "pilot --status: " << summary << " (of " << stages.size() << " stages)\n";
  std::cout << o.str() << std::flush;
  return o.str();
}

// ---------------------------------------------------------------- cancel

void cancel_study(const Study& s, double wait_seconds) {
  slurm::require_commands();
  DriveLock lock(s);
  const json jobs = read_jobs(s);
  const auto queue = slurm::queued(recorded_jobs(jobs));
  std::vector<long> ids;
  std::string names;
  std::vector<std::string> keys;  // the study's stages in plan order, then any others recorded
  for (const auto& r : study_stages(s)) keys.push_back(r.key);
  for (const auto& [key, v] : jobs["stages"].items())
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  for (const auto& key : keys) {
    if (!jobs["stages"].contains(key) || !jobs["stages"][key].contains("job")) continue;
    const auto& v = jobs["stages"][key];
    const long id = v["job"].get<long>();
    if (!queue.count(id)) continue;
    ids.push_back(id);
    names += (names.empty() ? "" : ", ") + v.value("label", key) + " " + v.value("stage", "") + " (job " +
             std::to_string(id) + ", " + queue.at(id).state + ")";
  }
  if (ids.empty()) {
    std::cout << "pilot --cancel: no job of study " << s.name << " is queued or running" << std::endl;
    return;
  }
  std::cout << "pilot --cancel: cancelling " << names << std::endl;
  slurm::cancel(ids);
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    const auto left = slurm::queued(ids);
    if (left.empty()) break;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > wait_seconds) {
      std::cout << "pilot --cancel: " << left.size() << " job(s) still stopping after " << int(wait_seconds)
                << " s; `--status` shows when they are gone" << std::endl;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  std::cout << "pilot --cancel: " << ids.size() << " job(s) cancelled and gone; submit again to resume" << std::endl;
}

// ---------------------------------------------------------------- inside a job

namespace {
std::string job_id_env() {
  const char* id = std::getenv("SLURM_JOB_ID");
  return id ? id : "";
}
std::vector<std::string> read_args(const std::string& path) {
  std::vector<std::string> args;
  if (!io::exists(path)) return args;
  const std::string bytes = io::read_file(path);
  size_t start = 0;
  while (start < bytes.size()) {
    const size_t end = bytes.find('\0', start);
    args.push_back(bytes.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return args;
}
}  // namespace

void job_plan(const Study& s, const std::string& key, const std::string& args_file) {
  const auto stages = study_stages(s);
  const auto& r = find_stage(stages, key, s);
  const std::string job = job_id_env();
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  io::make_dirs(fs::path(args_file).parent_path().string());
  const auto step = plan_step(s, r.stage, r.member);
  if (!step.skipped.empty()) {
    std::cout << "pilot: " << r.label << " " << r.stage << ": skipped, " << step.skipped << std::endl;
    io::write_atomic(args_file, "");
    return;
  }
  if (r.stage == "report") {
    const auto missing = missing_run_stages(s, stages);
    std::string m;
    for (const auto& x : missing) m += (m.empty() ? "" : ", ") + x;
    std::cout << "pilot: the report covers what completed" << (missing.empty() ? " (every stage)" : "; missing: " + m)
              << std::endl;
  }
  if (!step.partial.empty()) fs::remove(step.partial);  // an interrupted attempt restarts
  std::string bytes;
  for (const auto& a : step.args) bytes += a + '\0';
  io::write_atomic(args_file, bytes);
  std::cout << "pilot: " << r.label << " " << r.stage << " (job " << (job.empty() ? "?" : job) << " on " << host
            << "): " << shell_line(step.args) << std::endl;
}

int job_finish(const Study& s, const std::string& key, const std::string& args_file, int exit_code, double seconds) {
  const auto stages = study_stages(s);
  const auto& r = find_stage(stages, key, s);
  const auto args = read_args(args_file);
  const std::string job = job_id_env();
  json record = {{"kind", "pilot_stage"}, {"study", s.name}, {"stage", r.stage},
                 {"theta", r.stage == "report" ? 0.0 : r.member.theta}, {"command", shell_line(args)},
                 {"seconds", seconds}, {"exit_code", exit_code}, {"time", std::time(nullptr)}, {"launcher", "slurm"}};
  if (r.stage != "report" && r.member.seed) record["seed"] = *r.member.seed;
  if (!job.empty()) record["job"] = std::atol(job.c_str());
  io::append_jsonl(rundir::study_log_path(s.out), record);
  const std::string what = r.label + " " + r.stage;
  const std::string progress = r.stage == "train" ? train_progress(s, r.member) : "";

  if (exit_code != 0) {
    std::string dependants;
    try {
      const json jobs = read_jobs(s);
      const long me = std::atol(job.c_str());
      for (const auto& [k, v] : jobs["stages"].items())
        for (const auto& a : v.value("after", std::vector<long>{}))
          if (a == me && v.value("stage", "") != "report")
            dependants += (dependants.empty() ? "" : ", ") + v.value("label", k) + " " + v.value("stage", "") +
                          " (job " + std::to_string(v.value("job", 0L)) + ")";
    } catch (const std::exception&) {
    }
    std::cout << "pilot: " << what << " failed (exit code " << exit_code << ")"
              << (progress.empty() ? "" : "; training " + progress)
              << (dependants.empty() ? "" : "; SLURM cancels its dependants: " + dependants)
              << "; fix the cause and submit the study again" << std::endl;
    return exit_code > 0 && exit_code < 256 ? exit_code : 1;
  }
  if (r.stage == "niah" || r.stage == "kv") {
    const std::string final = rundir::result_path(run_dir(s, r.member), r.stage);
    const std::string partial = rundir::partial_path(final);
    if (io::exists(partial)) io::commit_atomic(partial, final);
  }
  if (r.stage == "report") {
    const auto missing = missing_run_stages(s, stages);
    io::write_json_atomic(report_record_path(s), {{"missing", missing}, {"job", record.value("job", 0L)},
                                                  {"time", std::time(nullptr)}});
    std::cout << "pilot: the report is in " << rundir::study_report_dir(s.out) << "/" << std::endl;
    return 0;
  }
  std::string why;
  if (!complete(s, r, stages, &why)) {
    std::cout << "pilot: " << what << " ended without completing" << (progress.empty() ? "" : ": training " + progress)
              << (r.stage == "train" ? " (stopped before the time limit; its checkpoint is saved)" : "")
              << "; submitting the study again resumes it" << std::endl;
    return 3;
  }
  std::cout << "pilot: " << what << " done in " << int(seconds) << " s (" << why << ")" << std::endl;
  return 0;
}

}  // namespace ropelab::study
