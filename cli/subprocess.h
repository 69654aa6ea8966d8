// Running ropelab itself as a child process (launch's ranks, pilot's stages).
#pragma once
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace ropelab::cli {

std::string self_path();                                  // this executable, from /proc/self/exe
// Starts `ropelab ARGS` (this same binary, through /proc/self/exe, even if
// the file has been rebuilt since) with these variables added to the
// environment; returns its pid.
pid_t spawn_self(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});
int run_self(const std::vector<std::string>& args);       // spawn_self, then wait; returns the wait status
bool succeeded(int status);                               // exited with status 0
bool interrupted(int status);                             // stopped by SIGINT/SIGTERM (or exited 130 after one)
int exit_code_of(int status);                             // the status as a shell would report it
std::string describe(int status);                         // "exited with status 2", "was killed by signal 9"

}  // namespace ropelab::cli
