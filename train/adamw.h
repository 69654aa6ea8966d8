// The optimizer: AdamW with weight decay on matrices only, stepped either by
// torch::optim::AdamW or by at::_fused_adamw_ (one multi-tensor kernel for
// all parameters, libtorch 2.x) on the same state, so a checkpoint is the
// same whichever stepped it and a run may switch between them on resume.
#pragma once
#include <torch/optim/adamw.h>

#include "model/transformer.h"
#include "train/train_config.h"

namespace ropelab::train {

torch::optim::AdamW make_optimizer(model::Transformer& m, const TrainConfig& c);

// Whether this libtorch has the fused AdamW kernel for parameters on `device`
// (CUDA from 2.0; the CPU from 2.4; none in 1.13).
bool fused_adamw_available(const at::Device& device);

// p's state in opt, made as torch::optim::AdamW makes it on first use (step
// 0, zero moments), so every stepper shares the state a checkpoint saves.
torch::optim::AdamWParamState& adamw_state(torch::optim::AdamW& opt, const at::Tensor& p);

// One AdamW step with the group's current lr: fused when `fused` (and
// available), else torch::optim::AdamW::step().
void adamw_step(torch::optim::AdamW& opt, bool fused);

}  // namespace ropelab::train
