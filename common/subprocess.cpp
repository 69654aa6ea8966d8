#include "common/subprocess.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>

#include "common/error.h"

extern char** environ;

namespace ropelab {

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
struct sigaction g_saved_int, g_saved_term, g_saved_chld;

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
  fwd.sa_flags = SA_RESTART;  // our own writes (a pipe to tee, say) are not cut short by it
  sigemptyset(&fwd.sa_mask);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGCHLD, &dfl, &g_saved_chld);  // an inherited SIG_IGN would let children vanish unwaited
  ::sigaction(SIGINT, nullptr, &g_saved_int);
  ::sigaction(SIGTERM, nullptr, &g_saved_term);
  // A signal ignored when ropelab started (a job started with & by a script) stays ignored, children included.
  if (g_saved_int.sa_handler != SIG_IGN) ::sigaction(SIGINT, &fwd, nullptr);
  if (g_saved_term.sa_handler != SIG_IGN) ::sigaction(SIGTERM, &fwd, nullptr);
}

ChildGroup::~ChildGroup() {
  try {
    if (running() > 0) {
      signal_all(SIGTERM);
      while (running() > 0) wait_any();
    }
  } catch (...) {  // a destructor must not throw; the children have been signalled
  }
  ::sigaction(SIGINT, &g_saved_int, nullptr);
  ::sigaction(SIGTERM, &g_saved_term, nullptr);
  ::sigaction(SIGCHLD, &g_saved_chld, nullptr);
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
  int slot = 0;
  while (slot < kMaxChildren && g_pids[slot] != 0) ++slot;
  if (slot == kMaxChildren) throw Error("internal: more than 256 children at once");
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw Error("cannot open " + log_path + " for a stage's output: " + std::strerror(errno));
  }
  const char msg[] = "ropelab: cannot start the ropelab executable\n";
  const pid_t parent = ::getpid();

  SignalsBlocked blocked;  // no signal is lost between fork and recording the pid
  const pid_t pid = ::fork();
  if (pid < 0) {
    if (log_fd >= 0) ::close(log_fd);
    throw Error("fork failed");
  }
  if (pid == 0) {
    // If ropelab itself is killed outright (SIGKILL, the OOM killer), its
    // children get SIGTERM (training saves and stops) instead of running on.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(130);  // it died before the line above
    ::sigaction(SIGINT, &g_saved_int, nullptr);
    ::sigaction(SIGTERM, &g_saved_term, nullptr);
    ::sigaction(SIGCHLD, &g_saved_chld, nullptr);
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
  // A signal that came before this child existed was forwarded to the others
  // only: it gets the same, so a stopping ropelab never waits on a fresh stage.
  if (g_signal != 0) ::kill(pid, g_signal);
  return pid;  // a signal that comes during fork is delivered (and forwarded) as `blocked` ends
}

// Reaps a child that has ended, if one has (blocking or not). The pid leaves
// the table before it is reaped: until waitpid, the pid cannot be reused, so
// the signal handler never signals a stranger.
static std::optional<ChildGroup::Ended> reap(bool block) {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOWAIT | (block ? 0 : WNOHANG)) < 0) {
      if (errno == EINTR) continue;
      throw Error(std::string("waiting for a child failed: ") + std::strerror(errno));
    }
    if (info.si_pid == 0) return std::nullopt;  // WNOHANG: none has ended
    const pid_t pid = info.si_pid;
    bool ours = false;
    {
      SignalsBlocked blocked;
      for (auto& p : g_pids)
        if (p == pid) p = 0, ours = true;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (ours) return ChildGroup::Ended{pid, status};
    // Not one of ours (ropelab starts children only here): reaped, wait on.
  }
}

ChildGroup::Ended ChildGroup::wait_any() {
  if (running() == 0) throw Error("internal: wait_any with no child running");
  return *reap(/*block=*/true);
}

std::optional<ChildGroup::Ended> ChildGroup::wait_any_for(double seconds) {
  if (running() == 0) throw Error("internal: wait_any_for with no child running");
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    if (auto ended = reap(/*block=*/false)) return ended;
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

ShellResult run_shell(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  ShellResult r{-1, ""};
  if (!p) return r;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace ropelab
