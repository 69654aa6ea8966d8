// Helpers shared by the tests: scratch directories, small corpora, and
// running the ropelab binary as a user would.
#pragma once
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/io.h"
#include "common/subprocess.h"

namespace ropelab::test {

// A fresh, empty directory under the test temp dir, named after the test.
inline std::string scratch_dir(const std::string& tag = "") {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = ::testing::TempDir() + "ropelab_" + info->test_suite_name() + "_" + info->name() + tag;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Deterministic pseudo-English with learnable structure (word bigrams repeat),
// so a tiny model's loss can fall well below the unigram entropy.
inline std::string synthetic_text(int sentences, unsigned seed = 1) {
  static const char* subj[] = {"the cat", "a dog", "my friend", "the old man", "her sister", "our teacher"};
  static const char* verb[] = {"sees", "likes", "finds", "reads", "builds", "paints"};
  static const char* obj[] = {"a red house", "the green river", "two small birds", "the long road", "a quiet garden"};
  std::string out;
  unsigned s = seed;
  auto next = [&s](unsigned n) { s = s * 1103515245u + 12345u; return (s >> 16) % n; };
  for (int i = 0; i < sentences; ++i) {
    out += std::string(subj[next(6)]) + " " + verb[next(6)] + " " + obj[next(5)] + ".";
    out += (i % 8 == 7) ? "\n" : " ";
  }
  return out;
}

// A shell command's exit code and standard output (common/subprocess.h).
using RunResult = ShellResult;
using ropelab::run_shell;

// Runs `ropelab ARGS` through the shell, capturing what it prints.
inline RunResult run_ropelab(const std::string& args) { return run_shell(std::string(ROPELAB_BIN) + " " + args + " 2>&1"); }

// The message of the ropelab::Error `f` throws, or "" if it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Starts `ropelab ARGS` as a child process (stdout and stderr to `log`, extra
// environment variables set) and returns its pid without waiting.
inline pid_t spawn_ropelab(const std::string& args, const std::string& log,
                           const std::map<std::string, std::string>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    ::dup2(2, 1);  // stdout to the same log
    std::vector<std::string> words{"ropelab"};
    std::istringstream in(args);
    for (std::string w; in >> w;) words.push_back(w);
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    ::execv(ROPELAB_BIN, argv.data());
    ::_exit(127);
  }
  return pid;
}

// Records in a JSON Lines file that may not exist yet (0 then).
inline size_t jsonl_records(const std::string& path) {
  return std::filesystem::exists(path) ? io::read_jsonl(path).size() : 0;
}

// Polls `ready` every 0.1 s for at most `seconds`; returns whether it came true.
template <class Ready>
bool wait_until(Ready ready, double seconds) {
  for (int i = 0; i < int(seconds * 10); ++i) {
    if (ready()) return true;
    ::usleep(100000);
  }
  return ready();
}

// Sends SIGTERM to a spawned ropelab and waits for it; returns its wait status.
inline int terminate_and_wait(pid_t pid) {
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

}  // namespace ropelab::test
