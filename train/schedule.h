// When to checkpoint, and the learning rate at each step.
#pragma once
#include <cstdint>
#include <set>
#include <string>

namespace ropelab::train {

// "log2+every:N" (0,1,2,4,...,512, then every N, as Pythia), "every:N",
// or an explicit list "list:0,10,100". The final step is always saved too.
class CheckpointSchedule {
 public:
  static CheckpointSchedule parse(const std::string& spec);  // throws Error on a bad spec
  bool due(int64_t step) const;

 private:
  bool log2_ = false;
  int64_t every_ = 0;
  std::set<int64_t> list_;
};

// Linear warm-up from lr/warmup to lr over `warmup` steps, then cosine decay to
// min_lr at max_steps. `step` counts optimizer steps from 0.
double lr_at(int64_t step, double lr, double min_lr, int64_t warmup, int64_t max_steps);

}  // namespace ropelab::train
