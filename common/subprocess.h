// Running ropelab itself as child processes (launch's ranks, pilot's stages).
#pragma once
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ropelab {

std::string self_path();  // this executable, from /proc/self/exe

// Children of this ropelab running side by side. Each runs `ropelab ARGS`
// through /proc/self/exe: this same binary even if the file has since been
// rebuilt. While a group exists, SIGINT and SIGTERM sent to ropelab are passed
// on to every running child (training saves a checkpoint and stops) and
// remembered, so ropelab waits for its children instead of dying first and
// leaving them behind. One group at a time; destroying it with children
// still running sends them SIGTERM and waits for them.
class ChildGroup {
 public:
  ChildGroup();
  ~ChildGroup();
  ChildGroup(const ChildGroup&) = delete;
  ChildGroup& operator=(const ChildGroup&) = delete;

  // Starts a child with these variables added to the environment; its stdout
  // and stderr go to the end of `log_path` when one is given, else to ours.
  pid_t start(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
              const std::string& log_path = "");
  struct Ended {
    pid_t pid;
    int status;  // as waitpid gives it
  };
  Ended wait_any();        // blocks until one running child ends
  // As wait_any, but gives up after `seconds` (nothing when no child ended by then).
  std::optional<Ended> wait_any_for(double seconds);
  int running() const;
  int signal_received() const;  // SIGINT or SIGTERM if one arrived while the group existed, else 0
  void signal_all(int sig);     // sends sig to every running child
};

// Runs a shell command line, capturing its standard output (exit_code -1
// when it could not start or did not exit normally).
struct ShellResult {
  int exit_code;
  std::string output;
};
ShellResult run_shell(const std::string& cmd);

bool succeeded(int status);                          // exited with status 0
bool interrupted(int status);                        // stopped by SIGINT/SIGTERM (or exited 130 after one)
int exit_code_of(int status);                        // the status as a shell would report it
std::string describe(int status);                    // "exited with status 2", "was killed by signal 9"

}  // namespace ropelab
