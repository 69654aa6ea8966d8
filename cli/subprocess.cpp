#include "cli/subprocess.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <csignal>
#include <cstring>

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

// The group's state is global because a signal handler reads it: a fixed
// table of running children's pids (0 = free slot) and the signal seen.
constexpr int kMaxChildren = 256;
volatile sig_atomic_t g_pids[kMaxChildren];
volatile sig_atomic_t g_signal = 0;
bool g_group_exists = false;
struct sigaction g_saved_int, g_saved_term;

void forward_to_children(int sig) {
  const int saved = errno;
  g_signal = sig;
  for (int i = 0; i < kMaxChildren; ++i)
    if (g_pids[i] > 0) ::kill(static_cast<pid_t>(g_pids[i]), sig);
  errno = saved;
}

// Blocks SIGINT/SIGTERM for its lifetime, so the pid table and the handler
// never see each other half-updated.
struct SignalsBlocked {
  SignalsBlocked() {
    sigset_t both;
    sigemptyset(&both);
    sigaddset(&both, SIGINT);
    sigaddset(&both, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &both, &old);
  }
  ~SignalsBlocked() { ::sigprocmask(SIG_SETMASK, &old, nullptr); }
  sigset_t old;
};

}  // namespace

ChildGroup::ChildGroup() {
  if (g_group_exists) throw Error("internal: one ChildGroup at a time");
  g_group_exists = true;
  for (auto& p : g_pids) p = 0;
  g_signal = 0;
  struct sigaction fwd {};
  fwd.sa_handler = forward_to_children;
  sigemptyset(&fwd.sa_mask);
  ::sigaction(SIGINT, &fwd, &g_saved_int);
  ::sigaction(SIGTERM, &fwd, &g_saved_term);
}

ChildGroup::~ChildGroup() {
  if (running() > 0) {
    signal_all(SIGTERM);
    while (running() > 0) wait_any();
  }
  ::sigaction(SIGINT, &g_saved_int, nullptr);
  ::sigaction(SIGTERM, &g_saved_term, nullptr);
  g_group_exists = false;
}

// Everything the child needs is built before fork(); after it the child only
// restores signal dispositions, redirects its output and execs
// (async-signal-safe calls only).
pid_t ChildGroup::start(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                        const std::string& log_path) {
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
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw Error("cannot open " + log_path + " for a stage's output: " + std::strerror(errno));
  }
  int slot = 0;
  while (slot < kMaxChildren && g_pids[slot] != 0) ++slot;
  if (slot == kMaxChildren) throw Error("internal: more than 256 children at once");
  const char msg[] = "ropelab: cannot start the ropelab executable\n";

  SignalsBlocked blocked;  // no signal is lost between fork and recording the pid
  const pid_t pid = ::fork();
  if (pid < 0) {
    if (log_fd >= 0) ::close(log_fd);
    throw Error("fork failed");
  }
  if (pid == 0) {
    ::sigaction(SIGINT, &g_saved_int, nullptr);
    ::sigaction(SIGTERM, &g_saved_term, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);  // dup2'ed descriptors do not inherit O_CLOEXEC
      ::dup2(log_fd, 2);
    }
    ::execve("/proc/self/exe", argv.data(), envp.data());
    ::execve(argv[0], argv.data(), envp.data());
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  if (log_fd >= 0) ::close(log_fd);
  g_pids[slot] = pid;
  return pid;  // a signal that came during fork is delivered (and forwarded) as `blocked` ends
}

ChildGroup::Ended ChildGroup::wait_any() {
  if (running() == 0) throw Error("internal: wait_any with no child running");
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw Error(std::string("waitpid failed: ") + std::strerror(errno));
    }
    SignalsBlocked blocked;
    for (auto& p : g_pids)
      if (p == pid) {
        p = 0;
        return {pid, status};
      }
    // Not one of ours (cannot happen while ropelab starts children only here): wait on.
  }
}

std::optional<ChildGroup::Ended> ChildGroup::wait_any_for(double seconds) {
  if (running() == 0) throw Error("internal: wait_any_for with no child running");
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) throw Error(std::string("waitpid failed: ") + std::strerror(errno));
    if (pid > 0) {
      SignalsBlocked blocked;
      for (auto& p : g_pids)
        if (p == pid) {
          p = 0;
          return Ended{pid, status};
        }
      continue;
    }
    if (std::chrono::steady_clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int ChildGroup::running() const {
  int n = 0;
  for (const auto& p : g_pids) n += p > 0;
  return n;
}

int ChildGroup::signal_received() const { return g_signal; }

void ChildGroup::signal_all(int sig) {
  SignalsBlocked blocked;
  for (const auto& p : g_pids)
    if (p > 0) ::kill(static_cast<pid_t>(p), sig);
}

int run_self(const std::vector<std::string>& args) {
  ChildGroup group;
  group.start(args);
  return group.wait_any().status;
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
