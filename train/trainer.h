// The training loop (train/trainer.cpp: a Trainer set up in named steps, then
// one loop) and what it writes to its run directory (paths: common/run_dir.h):
//   RUN_DIR/config.json      the resolved TrainConfig
//   RUN_DIR/metrics.jsonl    one record per step: step, tokens, loss, lr, grad_norm, tok_per_s [, val_loss]
//   RUN_DIR/checkpoints/     step_XXXXXXXX.pt + manifest.json
#pragma once
#include <string>

#include "data/prepare.h"
#include "train/train_config.h"

namespace ropelab::train {

struct TrainResult {
  int64_t final_step = 0;
  double last_loss = 0, last_val_loss = 0;
  bool interrupted = false;  // SIGINT/SIGTERM: stopped after saving a checkpoint
};

// Starts a new run in run_dir (which must not hold one already).
TrainResult train_new(const TrainConfig& cfg, const std::string& run_dir);
// Continues run_dir from its newest complete checkpoint with its saved config;
// max_steps > 0 extends (or shortens) the run.
TrainResult train_resume(const std::string& run_dir, int64_t max_steps = 0);

// The prepared data a config names, preparing it first if it does not exist.
data::PreparedData ensure_data(const TrainConfig& cfg);

}  // namespace ropelab::train
