#include "cli/subprocess.h"

#include <sys/wait.h>
#include <unistd.h>

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
    ::execv(exe.c_str(), argv.data());
    // Only async-signal-safe calls here (we are a forked child).
    const char msg[] = "ropelab: cannot start the ropelab executable (was it rebuilt or removed while running?)\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  return pid;
}

int run_self(const std::vector<std::string>& args) {
  const pid_t pid = spawn_self(args);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {}
  return status;
}

bool succeeded(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::string describe(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace ropelab::cli
