#include "cli/subprocess.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "common/error.h"

namespace ropelab::cli {

std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("cannot find the ropelab executable (/proc/self/exe)");
  return std::string(buf, n);
}

pid_t spawn_self(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  const std::string exe = self_path();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("fork failed");
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<std::string> argv_s{exe};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    // /proc/self/exe is this very binary even if the file was since rebuilt
    // or removed, so a long study runs every stage with the same ropelab.
    ::execv("/proc/self/exe", argv.data());
    ::execv(exe.c_str(), argv.data());
    // Only async-signal-safe calls here (we are a forked child).
    const char msg[] = "ropelab: cannot start the ropelab executable\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  return pid;
}

namespace {
volatile sig_atomic_t g_child = 0;
// While a stage runs, SIGINT/SIGTERM sent to ropelab are passed to the stage
// (training saves a checkpoint and stops), and ropelab waits for it to end
// instead of dying first and leaving it behind.
void forward_to_child(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}
}  // namespace

int run_self(const std::vector<std::string>& args) {
  struct sigaction fwd {}, old_int {}, old_term {};
  fwd.sa_handler = forward_to_child;
  sigemptyset(&fwd.sa_mask);
  ::sigaction(SIGINT, &fwd, &old_int);
  ::sigaction(SIGTERM, &fwd, &old_term);
  const pid_t pid = spawn_self(args);  // the child execs: caught signals are reset to default there
  g_child = pid;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  g_child = 0;
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return status;
}

bool succeeded(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::string describe(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace ropelab::cli
