#include "train/schedule.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "common/text.h"

namespace ropelab::train {
namespace {
int64_t parse_count(const std::string& s, const std::string& spec) {
  size_t used = 0;
  int64_t v = -1;
  try { v = std::stoll(s, &used); } catch (...) {}
  if (used != s.size() || v < 0)
    throw Error("checkpoint schedule \"" + spec + "\": \"" + s + "\" is not a non-negative integer");
  return v;
}
}  // namespace

CheckpointSchedule CheckpointSchedule::parse(const std::string& spec) {
  CheckpointSchedule s;
  std::string rest = spec;
  if (rest.rfind("log2+", 0) == 0) { s.log2_ = true; rest = rest.substr(5); }
  if (rest.rfind("every:", 0) == 0) {
    s.every_ = parse_count(rest.substr(6), spec);
    if (s.every_ == 0) throw Error("checkpoint schedule \"" + spec + "\": every:N needs N > 0");
  } else if (rest.rfind("list:", 0) == 0 && !s.log2_) {
    for (const auto& item : text::split(rest.substr(5))) s.list_.insert(parse_count(item, spec));
  } else {
    throw Error("checkpoint schedule \"" + spec + "\": expected log2+every:N, every:N or list:A,B,...");
  }
  return s;
}

bool CheckpointSchedule::due(int64_t step) const {
  if (list_.count(step)) return true;
  if (log2_ && (step == 0 || (step <= 512 && (step & (step - 1)) == 0))) return true;
  return every_ > 0 && step % every_ == 0;
}

double lr_at(int64_t step, double lr, double min_lr, int64_t warmup, int64_t max_steps) {
  if (step < warmup) return lr * double(step + 1) / double(warmup);
  const double span = std::max<int64_t>(1, max_steps - warmup);
  const double progress = std::min(1.0, double(step - warmup) / span);
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace ropelab::train
