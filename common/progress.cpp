#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace ropelab {

Progress::Progress(std::string label, int64_t total, int64_t log_every)
    : label_(std::move(label)), total_(total), log_every_(log_every > 0 ? log_every : 1),
      tty_(::isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}

std::string Progress::duration(double s) {
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

void Progress::update(int64_t done, const std::string& detail) {
  if (first_ < 0) first_ = done - 1;  // a resumed run counts its own pace
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = done > first_ ? (done - first_) / std::max(elapsed, 1e-9) : 0.0;
  const std::string eta = rate > 0 ? duration((total_ - done) / rate) : "?";
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s %lld/%lld | %s | ETA %s", label_.c_str(), (long long)done,
                 (long long)total_, detail.c_str(), eta.c_str());
    std::fflush(stderr);
  } else if (done % log_every_ == 0 || done == total_) {
    std::fprintf(stderr, "%s %lld/%lld | %s | ETA %s\n", label_.c_str(), (long long)done, (long long)total_,
                 detail.c_str(), eta.c_str());
  }
}

void Progress::finish(const std::string& detail) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s%s done in %s | %s\n", tty_ ? "\r\033[K" : "", label_.c_str(),
               duration(elapsed).c_str(), detail.c_str());
}

}  // namespace ropelab
