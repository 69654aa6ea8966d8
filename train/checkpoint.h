// Checkpoints of a run: RUN_DIR/checkpoints/step_XXXXXXXX.pt plus manifest.json.
// A checkpoint file is written under a temporary name, fsynced and renamed;
// only then is it added to the manifest (itself replaced atomically), so the
// manifest never lists a file a crash could have left incomplete.
#pragma once
#include <torch/optim/optimizer.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/run_dir.h"
#include "model/transformer.h"

namespace ropelab::train {

// The layout and the manifest are common/run_dir.h's.
using rundir::CheckpointEntry;
using rundir::checkpoints_dir;
using rundir::read_manifest;

// `state` carries the config, step, tokens and anything needed to resume.
void save_checkpoint(const std::string& run_dir, int64_t step, int64_t tokens_seen, model::Transformer& m,
                     torch::optim::Optimizer* opt, const nlohmann::json& state);

// Restores weights (and optimizer state when `opt` is given); returns `state`.
nlohmann::json load_checkpoint(const std::string& path, model::Transformer& m, torch::optim::Optimizer* opt);

// For evaluation: builds the model a checkpoint file describes and loads it.
struct LoadedModel {
  model::Transformer model{nullptr};
  nlohmann::json state;  // includes "config" (the run's TrainConfig) and "step"
};
LoadedModel load_model(const std::string& ckpt_path);

}  // namespace ropelab::train
