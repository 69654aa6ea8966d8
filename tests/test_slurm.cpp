// `ropelab pilot --launcher slurm` against a real SLURM (scripts/slurm-local:
// munged, slurmctld and slurmd on this machine, CPU only). The cluster is the
// one SLURM_CONF names when it answers (.ci/run brings it up before the tests
// and down after); otherwise these tests bring it up with scripts/slurm-local
// (ROPELAB_SLURM_DIR, default /tmp/ropelab-slurm) and down again when they
// started it. They are skipped, saying why, only when it cannot be started.
//
// The job scripts run on the machine's own filesystem, calling ropelab by
// absolute path: this build's ropelab, or ROPELAB_SLURM_TEST_BIN when the
// tests run inside a root the SLURM node cannot see (scripts/torch2's), so a
// host-side wrapper must start it. Plain C++ (the binary does the training).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "common/io.h"
#include "test_util.h"

using namespace ropelab;
using test::run_shell;
using test::write_text;

namespace {
namespace fs = std::filesystem;
const std::string kSource = ROPELAB_SOURCE_DIR;

std::string tail_of(const std::string& s, size_t n = 1500) { return s.size() > n ? s.substr(s.size() - n) : s; }

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The binary the job scripts call.
std::string job_bin() {
  const char* b = std::getenv("ROPELAB_SLURM_TEST_BIN");
  return b && *b ? b : ROPELAB_BIN;
}

class Slurm : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    skip_.clear();
    brought_up_ = false;
    const char* conf = std::getenv("SLURM_CONF");
    if (conf && *conf && run_shell("sinfo --noheader >/dev/null 2>&1").exit_code == 0) return;  // .ci/run's cluster
    if (fs::exists("/.ropelab-stamps") && run_shell("command -v sbatch >/dev/null 2>&1").exit_code != 0) {
      skip_ = "inside scripts/torch2's root, which has no SLURM and cannot reach this machine's; .ci/run runs these "
              "tests in stage 1, on the machine itself, with scripts/slurm-local up";
      return;
    }
    const std::string script = kSource + "/scripts/slurm-local";
    const bool was_up = run_shell(script + " status >/dev/null 2>&1").exit_code == 0;
    const auto up = run_shell(script + " up 2>&1");
    if (up.exit_code != 0) {
      skip_ = "scripts/slurm-local up could not start SLURM here: " + tail_of(up.output, 800);
      return;
    }
    const std::smatch m = [&] {
      std::smatch r;
      std::regex_search(up.output, r, std::regex("export SLURM_CONF=(\\S+)"));
      return r;
    }();
    if (m.empty()) {
      skip_ = "scripts/slurm-local up did not say where slurm.conf is: " + tail_of(up.output, 800);
      return;
    }
    ::setenv("SLURM_CONF", m[1].str().c_str(), 1);
    brought_up_ = !was_up;
  }
  static void TearDownTestSuite() {
    if (brought_up_) run_shell(kSource + "/scripts/slurm-local down >/dev/null 2>&1");
  }

 protected:
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    dir_ = test::scratch_dir();
  }

  // Tiny prepared data (40 synthetic documents, 300 pieces), made by the binary.
  std::string data() {
    const std::string out = dir_ + "/data";
    if (fs::exists(out + "/meta.json")) return out;
    fs::create_directories(dir_ + "/text");
    for (int i = 0; i < 40; ++i) write_text(dir_ + "/text/doc" + std::to_string(100 + i) + ".txt", test::synthetic_text(120, 1 + i));
    const auto r = run_ropelab("data prepare --input " + dir_ + "/text --vocab-size 300 --val-fraction 0.1 --out " + out);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return out;
  }

  // DIR/tiny.toml: a tiny model trained `steps` steps.
  std::string recipe(int steps, const std::string& checkpoints, const std::string& extra = "") {
    const std::string path = dir_ + "/tiny.toml";
    write_text(path, "data-dir = \"" + data() + "\"\nd-model = 32\nn-layers = 2\nn-heads = 2\nT-train = 128\nmax-steps = " +
                         std::to_string(steps) + "\nbatch-size = 2\ncheckpoints = \"" + checkpoints + "\"\neval-every = " +
                         std::to_string(steps) + "\neval-batches = 1\nthreads = 1\n" + extra);
    return path;
  }

  // DIR/study.toml over the recipe, with every stage's flags kept tiny.
  std::string study(const std::string& thetas, const std::string& seeds, const std::string& sections) {
    const std::string path = dir_ + "/study.toml";
    write_text(path, "study = \"s" + std::to_string(::getpid()) + "\"\nout = \"" + dir_ + "/study\"\ntrain-recipe = \"" + dir_ +
                         "/tiny.toml\"\nthetas = " + thetas + "\n" + seeds + sections +
                         "[slurm]\ncpus-per-task = 1\nropelab-bin = \"" + job_bin() + "\"\n");
    return path;
  }
  static std::string all_stages() {
    return "[gamma]\ndistances = \"2,4,8,16,32\"\nprompts = 2\nseeds = \"1\"\nfit-min-d = 2\nbootstrap = 20\n"
           "[niah]\nlengths = \"1x\"\ndepths = \"0.5\"\ntrials = 2\nscaling = [\"none\", \"yarn:2\"]\nppl-windows = 1\n"
           "[kv]\ncontext = 24\ndecode = 6\nwindows = 1\nratios = \"0.5\"\ngmm-max-k = 0\nniah-trials = 0\n";
  }

  static test::RunResult run_ropelab(const std::string& args) { return test::run_ropelab(args); }
  test::RunResult pilot(const std::string& args) { return run_ropelab("pilot --config " + dir_ + "/study.toml " + args); }

  // Polls --status until no stage is running or pending (or `seconds` pass); returns the last status.
  std::string wait_for_study(const std::string& out_flag = "", double seconds = 600) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string last;
    for (;;) {
      last = pilot(out_flag + " --status").output;
      const std::string summary = last.substr(last.rfind("pilot --status: "));
      if (summary.find("running") == std::string::npos && summary.find("pending") == std::string::npos) return last;
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) {
        ADD_FAILURE() << "the study's jobs did not end in " << seconds << " s:\n" << last;
        return last;
      }
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
  }

  static std::string skip_;
  static bool brought_up_;
  std::string dir_;
};
std::string Slurm::skip_;
bool Slurm::brought_up_ = false;

// The status line of one stage ("  θ=1e4 seed=1  train  done  job 12").
std::string status_line(const std::string& status, const std::string& label, const std::string& stage) {
  std::stringstream in(status);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("  " + label + " ", 0) == 0 && line.find(" " + stage + " ") != std::string::npos) return line;
  return "";
}

// Files under `root` (relative paths), leaving out what `skip` matches.
std::set<std::string> files_under(const std::string& root, const std::regex& skip) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) {
      const std::string rel = fs::relative(e.path(), root).string();
      if (!std::regex_search(rel, skip)) out.insert(rel);
    }
  return out;
}

// The record kinds in a JSON Lines file, counted.
std::map<std::string, int> kinds(const std::string& path) {
  std::map<std::string, int> k;
  for (const auto& r : io::read_jsonl(path)) ++k[r.value("kind", std::string("?"))];
  return k;
}

// <h2> headings of a report page, in order.
std::vector<std::string> headings(const std::string& html) {
  std::vector<std::string> out;
  const std::regex h("<h2[^>]*>([^<]*)</h2>");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), h); it != std::sregex_iterator(); ++it) out.push_back((*it)[1]);
  return out;
}

// Whether any file under `root` is a temporary one (an atomic write caught mid-way).
std::vector<std::string> temporaries(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename().string().find(".tmp") != std::string::npos) out.push_back(e.path().string());
  return out;
}

// Each line of a JSON Lines file parses (a torn line would not).
bool every_line_parses(const std::string& path) {
  std::stringstream in(io::read_file(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && !nlohmann::json::accept(line)) return false;
  return true;
}
}  // namespace

// The smoke study's shape (2 θ × 2 seeds; train, γ, NIAH, KV, report) through
// SLURM and through the local launcher: the same stages ran, the same record
// files with the same kinds and counts, the same report sections; --status
// shows every stage done with its job id, and submitting again submits nothing.
TEST_F(Slurm, ASmokeStudyRunsEndToEndAndMatchesTheLocalLauncher) {
  recipe(4, "list:2,4");
  study("[1e4, 1e6]", "seeds = [1, 2]\n", all_stages());
  auto local = pilot("--out " + dir_ + "/local");
  ASSERT_EQ(local.exit_code, 0) << local.output;

  auto r = pilot("--out " + dir_ + "/slurm --launcher slurm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, ": job "), 17) << r.output;  // 4 runs × 4 stages, and the report
  const std::string status = wait_for_study("--out " + dir_ + "/slurm");
  EXPECT_NE(status.find("pilot --status: 17 done (of 17 stages)"), std::string::npos) << status;
  for (const char* label : {"θ=1e4 seed=1", "θ=1e4 seed=2", "θ=1e6 seed=1", "θ=1e6 seed=2"})
    for (const char* stage : {"train", "gamma", "niah", "kv"})
      EXPECT_TRUE(std::regex_search(status_line(status, label, stage), std::regex(" done +job [0-9]+$")))
          << label << " " << stage << "\n" << status;
  EXPECT_TRUE(std::regex_search(status_line(status, "study", "report"), std::regex(" done +job [0-9]+$"))) << status;

  // The same run directories, files and records as the local launcher's.
  const std::regex logs("(^|/)[a-z]+\\.log$");
  for (const char* run : {"theta-1e4-seed-1", "theta-1e4-seed-2", "theta-1e6-seed-1", "theta-1e6-seed-2"}) {
    const std::string a = dir_ + "/local/" + run, b = dir_ + "/slurm/" + run;
    EXPECT_EQ(files_under(a, logs), files_under(b, logs)) << run;
    for (const char* rec : {"gamma.jsonl", "niah.jsonl", "kv.jsonl"})
      EXPECT_EQ(kinds(a + "/" + rec), kinds(b + "/" + rec)) << run << " " << rec;
    EXPECT_EQ(io::read_json(a + "/checkpoints/manifest.json")["checkpoints"].size(),
              io::read_json(b + "/checkpoints/manifest.json")["checkpoints"].size());
  }
  auto stages_ran = [](const std::string& log) {
    std::multiset<std::string> s;
    for (const auto& rec : io::read_jsonl(log))
      s.insert(rec["stage"].get<std::string>() + " " + std::to_string(rec["theta"].get<double>()) + " " +
               (rec.contains("seed") ? rec["seed"].dump() : "-") + " " + std::to_string(rec["exit_code"].get<int>()));
    return s;
  };
  EXPECT_EQ(stages_ran(dir_ + "/slurm/pilot.jsonl").size(), 17u);
  EXPECT_EQ(stages_ran(dir_ + "/local/pilot.jsonl").size(), 17u);
  EXPECT_EQ(stages_ran(dir_ + "/local/pilot.jsonl"), stages_ran(dir_ + "/slurm/pilot.jsonl"));
  EXPECT_EQ(files_under(dir_ + "/local/report", std::regex("^figures/")),
            files_under(dir_ + "/slurm/report", std::regex("^figures/")));
  const auto sections = headings(io::read_file(dir_ + "/local/report/report.html"));
  EXPECT_FALSE(sections.empty());
  EXPECT_EQ(sections, headings(io::read_file(dir_ + "/slurm/report/report.html")));

  // The job scripts are in the study directory, readable and resubmittable.
  const std::string script = io::read_file(dir_ + "/slurm/slurm/theta-1e4-seed-1.train.sbatch");
  EXPECT_NE(script.find("#SBATCH --ntasks-per-node=1"), std::string::npos) << script;
  EXPECT_NE(script.find("srun --kill-on-bad-exit=1"), std::string::npos) << script;
  EXPECT_NE(script.find("#SBATCH --signal=TERM@120"), std::string::npos) << script;

  // Everything complete: submitting again submits nothing.
  r = pilot("--out " + dir_ + "/slurm --launcher slurm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("nothing to submit"), std::string::npos) << r.output;
  EXPECT_EQ(count(r.output, ": job "), 0) << r.output;
}

// A training that fails (its run directory cannot be resumed) cancels only
// its own γ, NIAH and KV; the other θ completes, the report runs on what
// completed and says what is missing, --status names the failure (job, exit
// code, log) and the cancelled dependants. With the cause removed, submitting
// again runs only the failed θ's stages and the report.
TEST_F(Slurm, AFailedTrainingCancelsOnlyItsDependantsAndResubmittingCompletes) {
  recipe(4, "list:2,4");
  study("[1e4, 1e6]", "", all_stages());
  fs::create_directories(dir_ + "/study/theta-1e6");
  write_text(dir_ + "/study/theta-1e6/config.json", "{\"max_steps\": 4}\n");  // a run that cannot resume
  auto r = pilot("--launcher slurm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string status = wait_for_study();
  const std::string failed = status_line(status, "θ=1e6", "train");
  EXPECT_TRUE(std::regex_search(failed, std::regex(" failed +job [0-9]+ FAILED, exit code [1-9]"))) << status;
  EXPECT_NE(failed.find("log " + dir_ + "/study/slurm/logs/theta-1e6.train."), std::string::npos) << failed;
  const std::string job = std::regex_replace(failed, std::regex(".* failed +job ([0-9]+) .*"), "$1");
  for (const char* stage : {"gamma", "niah", "kv"}) {
    const std::string line = status_line(status, "θ=1e6", stage);
    EXPECT_NE(line.find("cancelled"), std::string::npos) << status;
    EXPECT_NE(line.find("(θ=1e6 train, job " + job + ")"), std::string::npos) << status;
    EXPECT_NE(status_line(status, "θ=1e4", stage).find(" done "), std::string::npos) << status;
  }
  EXPECT_NE(status_line(status, "study", "report").find("the last report was made without: θ=1e6 train, θ=1e6 gamma"),
            std::string::npos)
      << status;
  EXPECT_TRUE(fs::exists(dir_ + "/study/report/report.html"));
  const std::string log = io::read_file(failed.substr(failed.find("log ") + 4));
  EXPECT_NE(log.find("θ=1e6 train failed"), std::string::npos) << log;
  EXPECT_NE(log.find("SLURM cancels its dependants: θ=1e6 gamma"), std::string::npos) << log;

  // The cause removed, a second submission runs only what is missing.
  const auto done_before = fs::last_write_time(dir_ + "/study/theta-1e4/kv.jsonl");
  const size_t records_before = io::read_jsonl(dir_ + "/study/pilot.jsonl").size();
  fs::remove_all(dir_ + "/study/theta-1e6");
  r = pilot("--launcher slurm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, ": job "), 5) << r.output;  // θ=1e6's four stages and the report
  EXPECT_EQ(r.output.find("θ=1e4"), std::string::npos) << r.output;
  status = wait_for_study();
  EXPECT_NE(status.find("pilot --status: 9 done (of 9 stages)"), std::string::npos) << status;
  EXPECT_EQ(fs::last_write_time(dir_ + "/study/theta-1e4/kv.jsonl"), done_before);
  const auto records = io::read_jsonl(dir_ + "/study/pilot.jsonl");
  EXPECT_EQ(records.size(), records_before + 5);
  for (size_t i = records_before; i < records.size(); ++i)
    EXPECT_NE(records[i]["theta"].get<double>(), 1e4) << records[i].dump();
}

// --cancel mid-training: the training saves a checkpoint on SIGTERM and
// stops; no temporary file, torn record or unlisted checkpoint is left, and
// --status says where the training stands. Submitting again resumes it
// (`train --resume`) and completes the study.
TEST_F(Slurm, CancellingMidStudyLeavesNothingHalfWrittenAndResubmittingResumes) {
  recipe(5000, "list:5000", "log-every = 10\n");
  study("[1e4]", "", "[gamma]\ndistances = \"2,4,8,16,32\"\nprompts = 2\nseeds = \"1\"\nfit-min-d = 2\nbootstrap = 20\n"
                     "[niah]\nskip = true\n[kv]\nskip = true\n[report]\nskip = true\n");
  const std::string run = dir_ + "/study/theta-1e4";
  auto r = pilot("--launcher slurm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // metrics.jsonl has a record every log-every and every eval-every step: wait by step, not by count.
  auto last_logged_step = [&] {
    const std::string metrics = run + "/metrics.jsonl";
    if (!fs::exists(metrics)) return int64_t{0};
    const auto records = io::read_jsonl(metrics);
    return records.empty() ? int64_t{0} : records.back()["step"].get<int64_t>();
  };
  ASSERT_TRUE(test::wait_until([&] { return last_logged_step() >= 200; }, 120)) << pilot("--status").output;
  const int64_t logged_before_cancel = last_logged_step();
  r = pilot("--cancel");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("cancelling θ=1e4 train (job "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("θ=1e4 gamma (job "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cancelled and gone"), std::string::npos) << r.output;

  EXPECT_TRUE(temporaries(dir_ + "/study").empty()) << temporaries(dir_ + "/study").front();
  const auto manifest = io::read_json(run + "/checkpoints/manifest.json")["checkpoints"];
  ASSERT_FALSE(manifest.empty());  // saved on SIGTERM
  const int64_t stopped_at = manifest.back()["step"].get<int64_t>();
  EXPECT_GE(stopped_at, logged_before_cancel);  // the SIGTERM checkpoint is at or after the last logged step
  EXPECT_LT(stopped_at, 5000);
  for (const auto& c : manifest) EXPECT_TRUE(fs::exists(run + "/checkpoints/" + c["file"].get<std::string>())) << c.dump();
  for (const auto& f : {run + "/metrics.jsonl", dir_ + "/study/pilot.jsonl"})
    if (fs::exists(f)) EXPECT_TRUE(every_line_parses(f)) << f;
  EXPECT_FALSE(fs::exists(run + "/gamma.jsonl"));
  std::string status = pilot("--status").output;
  EXPECT_NE(status_line(status, "θ=1e4", "train").find("at step " + std::to_string(stopped_at) + " of 5000"),
            std::string::npos)
      << status;
  EXPECT_NE(status_line(status, "θ=1e4", "train").find("cancelled"), std::string::npos) << status;

  r = pilot("--launcher slurm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, ": job "), 2) << r.output;
  status = wait_for_study();
  EXPECT_NE(status.find("pilot --status: 2 done (of 2 stages)"), std::string::npos) << status;
  const auto jobs = io::read_json(dir_ + "/study/slurm/jobs.json");
  const auto train_job = jobs["stages"]["theta-1e4.train"]["job"].get<long>();
  const std::string log = io::read_file(dir_ + "/study/slurm/logs/theta-1e4.train." + std::to_string(train_job) + ".log");
  EXPECT_NE(log.find("train --resume " + run), std::string::npos) << log;
  EXPECT_EQ(io::read_json(run + "/checkpoints/manifest.json")["checkpoints"].back()["step"].get<int64_t>(), 5000);
  EXPECT_EQ(io::read_jsonl(run + "/gamma.jsonl").size(), io::read_json(run + "/checkpoints/manifest.json")["checkpoints"].size());
}

// Bad input gets a named error, exit 2, and submits nothing: no sbatch on
// PATH, a partition SLURM refuses, a study directory another submission is
// driving, an unknown [slurm] key.
TEST_F(Slurm, BadInputIsRefusedByNameAndSubmitsNothing) {
  recipe(4, "list:4");
  study("[1e4]", "", "[gamma]\nskip = true\n[niah]\nskip = true\n[kv]\nskip = true\n[report]\nskip = true\n");
  const std::string jobs = dir_ + "/study/slurm/jobs.json";
  auto r = run_shell("PATH=/nonexistent " + std::string(ROPELAB_BIN) + " pilot --config " + dir_ +
                     "/study.toml --launcher slurm 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("sbatch is not on PATH"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(jobs));

  const std::string name = "pilot-s" + std::to_string(::getpid()) + "-";
  auto queued = [&] { return run_shell("squeue --noheader --format=%j | grep -c '^" + name + "' || true").output; };
  r = pilot("--launcher slurm --partition nosuch");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("SLURM refuses the train job"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nosuch"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nothing was submitted"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(jobs));
  EXPECT_EQ(queued(), "0\n");

  // Another submission holds the study directory's lock.
  fs::create_directories(dir_ + "/study/slurm");
  const int fd = ::open((dir_ + "/study/slurm/lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string me = std::to_string(::getpid());
  ASSERT_EQ(::pwrite(fd, me.data(), me.size(), 0), ssize_t(me.size()));
  for (const char* what : {"--launcher slurm", "--cancel"}) {
    r = pilot(what);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("is being driven by another submission (pid " + me + ")"), std::string::npos) << r.output;
  }
  ::close(fd);
  EXPECT_FALSE(fs::exists(jobs));
  EXPECT_EQ(queued(), "0\n");

  r = pilot("--partition debug");  // a SLURM setting without --launcher slurm
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--partition is a setting of --launcher slurm"), std::string::npos) << r.output;
  write_text(dir_ + "/study.toml", io::read_file(dir_ + "/study.toml") + "partiton = \"debug\"\n");
  r = pilot("--launcher slurm");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("key \"slurm.partiton\": unknown SLURM setting"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(jobs));
}
