// Progress for long work: a redrawn line on a terminal, plain log lines
// (every `log_every` updates, and the last) when stderr is a file or pipe.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace ropelab {

class Progress {
 public:
  Progress(std::string label, int64_t total, int64_t log_every = 1);
  // done: units finished so far; detail: e.g. "loss 3.21 | 12.3k tok/s".
  void update(int64_t done, const std::string& detail);
  void finish(const std::string& detail);
  static std::string duration(double seconds);  // "1m02s"

 private:
  std::string label_;
  int64_t total_, log_every_, first_ = -1;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ropelab
