#include "cli/subprocess.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "common/error.h"

extern char** environ;

namespace ropelab::cli {

std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("cannot find the ropelab executable (/proc/self/exe)");
  return std::string(buf, n);
}

namespace {

struct SavedSignals {
  struct sigaction int_action, term_action;
};

// Everything the child needs is built before fork(); after it the child only
// restores signal dispositions and execs (async-signal-safe calls only).
pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
            const SavedSignals* restore) {
  const std::string exe = self_path();
  std::vector<std::string> argv_s{exe};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    if (env.count(kv.substr(0, kv.find('='))) == 0) env_s.push_back(kv);
  }
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char msg[] = "ropelab: cannot start the ropelab executable\n";

  const pid_t pid = ::fork();
  if (pid < 0) throw Error("fork failed");
  if (pid == 0) {
    if (restore) {
      ::sigaction(SIGINT, &restore->int_action, nullptr);
      ::sigaction(SIGTERM, &restore->term_action, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // /proc/self/exe is this very binary even if the file was since rebuilt
    // or removed, so a long study runs every stage with the same ropelab.
    ::execve("/proc/self/exe", argv.data(), envp.data());
    ::execve(argv[0], argv.data(), envp.data());
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  return pid;
}

volatile sig_atomic_t g_child = 0;
// While a stage runs, SIGINT/SIGTERM sent to ropelab are passed to the stage
// (training saves a checkpoint and stops), and ropelab waits for it to end
// instead of dying first and leaving it behind.
void forward_to_child(int sig) {
  const int saved = errno;
  if (g_child > 0) ::kill(g_child, sig);
  errno = saved;
}

}  // namespace

pid_t spawn_self(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  return spawn(args, env, nullptr);
}

int run_self(const std::vector<std::string>& args) {
  // Block the two signals across fork so none is lost between installing the
  // forwarder and knowing the child's pid; the child restores and unblocks.
  sigset_t both, old_mask;
  sigemptyset(&both);
  sigaddset(&both, SIGINT);
  sigaddset(&both, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &both, &old_mask);
  struct sigaction fwd {};
  fwd.sa_handler = forward_to_child;
  sigemptyset(&fwd.sa_mask);
  SavedSignals saved{};
  ::sigaction(SIGINT, &fwd, &saved.int_action);
  ::sigaction(SIGTERM, &fwd, &saved.term_action);
  pid_t pid = -1;
  try {
    pid = spawn(args, {}, &saved);
  } catch (...) {
    ::sigaction(SIGINT, &saved.int_action, nullptr);
    ::sigaction(SIGTERM, &saved.term_action, nullptr);
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    throw;
  }
  g_child = pid;
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);  // pending signals now reach the child
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  ::sigprocmask(SIG_BLOCK, &both, nullptr);
  g_child = 0;
  ::sigaction(SIGINT, &saved.int_action, nullptr);
  ::sigaction(SIGTERM, &saved.term_action, nullptr);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return status;
}

bool succeeded(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

bool interrupted(int status) {
  return (WIFEXITED(status) && WEXITSTATUS(status) == 130) ||
         (WIFSIGNALED(status) && (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM));
}

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::string describe(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace ropelab::cli
