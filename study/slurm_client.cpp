#include "study/slurm_client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "common/error.h"

namespace ropelab::study::slurm {

std::string find_on_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) dir = ".";
    const std::string full = dir + "/" + name;
    struct stat st {};
    if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(full.c_str(), X_OK) == 0) return full;
  }
  return "";
}

Output run_command(const std::vector<std::string>& argv) {
  Output result;
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0) return result;
  if (::pipe(err_pipe) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return result;
  }
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* into[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        into[i]->append(buf, size_t(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

namespace {
std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t start = 0;
  while (start < s.size() && (s[start] == '\n' || s[start] == ' ')) ++start;
  return s.substr(start);
}
// What a failed command said, on one line.
std::string said(const Output& o) {
  std::string text = trimmed(o.err.empty() ? o.out : o.err);
  for (auto& c : text)
    if (c == '\n') c = ' ';
  return text.empty() ? "exit code " + std::to_string(o.exit_code) : text;
}
std::string id_list(const std::vector<long>& ids) {
  std::string s;
  for (long id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}
}  // namespace

void require_commands() {
  for (const char* c : {"sbatch", "squeue", "scontrol", "scancel"})
    if (find_on_path(c).empty())
      throw Error(std::string("--launcher slurm: ") + c +
                  " is not on PATH (SLURM's client commands sbatch, squeue, scontrol and scancel are needed; on a "
                  "cluster, run on a login node or load SLURM's module; on one machine, scripts/slurm-local up)");
}

std::map<long, Queued> queued(const std::vector<long>& ids) {
  std::map<long, Queued> found;
  if (ids.empty()) return found;
  const auto o = run_command({"squeue", "--noheader", "--jobs=" + id_list(ids), "--format=%i|%T|%r"});
  if (o.exit_code != 0) {
    // Every id unknown to SLURM (a purged controller, or long finished): nothing is queued.
    if (o.err.find("Invalid job id") != std::string::npos) return found;
    throw Error("squeue failed: " + said(o));
  }
  std::stringstream lines(o.out);
  for (std::string line; std::getline(lines, line);) {
    const size_t a = line.find('|');
    const size_t b = line.find('|', a == std::string::npos ? a : a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    char* end = nullptr;
    const long id = std::strtol(line.c_str(), &end, 10);
    if (end != line.c_str() + a) continue;  // array or het job ids are not the pilot's
    found[id] = {line.substr(a + 1, b - a - 1), trimmed(line.substr(b + 1))};
  }
  return found;
}

std::optional<JobInfo> job_info(long id) {
  const auto o = run_command({"scontrol", "show", "job", "--oneliner", std::to_string(id)});
  if (o.exit_code != 0) return std::nullopt;
  JobInfo info;
  // Space-separated KEY=VALUE pairs; values have no spaces except a few fields not read here.
  auto field = [&](const std::string& key) {
    const std::string pat = " " + key + "=";
    size_t at = (" " + o.out).find(pat);
    if (at == std::string::npos) return std::string();
    at += pat.size() - 1;
    const size_t end = o.out.find_first_of(" \n", at);
    return o.out.substr(at, end == std::string::npos ? std::string::npos : end - at);
  };
  info.state = field("JobState");
  info.reason = field("Reason");
  info.exit_code = field("ExitCode");
  info.dependency = field("Dependency");
  info.std_out = field("StdOut");
  if (info.state.empty()) return std::nullopt;
  return info;
}

std::string test_submission(const std::string& script, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {"sbatch", "--test-only"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(script);
  const auto o = run_command(argv);
  return o.exit_code == 0 ? "" : said(o);
}

long submit(const std::string& script, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {"sbatch", "--parsable"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(script);
  const auto o = run_command(argv);
  if (o.exit_code != 0) throw Error("sbatch " + script + " failed: " + said(o));
  // --parsable prints "ID" or "ID;CLUSTER" (perhaps after warnings on other lines).
  std::stringstream lines(o.out);
  std::string line, last;
  while (std::getline(lines, line))
    if (!trimmed(line).empty()) last = trimmed(line);
  char* end = nullptr;
  const long id = std::strtol(last.c_str(), &end, 10);
  if (last.empty() || id <= 0 || (*end != '\0' && *end != ';'))
    throw Error("sbatch " + script + ": cannot read the job id from its output \"" + trimmed(o.out) + "\"");
  return id;
}

void cancel(const std::vector<long>& ids) {
  if (ids.empty()) return;
  std::vector<std::string> argv = {"scancel"};
  for (long id : ids) argv.push_back(std::to_string(id));
  const auto o = run_command(argv);
  if (o.exit_code != 0) throw Error("scancel " + id_list(ids) + " failed: " + said(o));
}

}  // namespace ropelab::study::slurm
