// The whole training step (forward, backward, gradient clipping, AdamW)
// captured once as a CUDA graph and replayed: one launch per step instead of
// thousands, and no host synchronisation inside it.
//
// What capture needs, and how the step provides it:
//   static buffers      the windows are copied into one device tensor before
//                       each replay; gradients are zeroed in place, never freed
//   no host syncs       the loss and the gradient norm stay on the device and
//                       are read back every --log-every steps, not every step;
//                       clipping scales by min(1, max/‖g‖) on the device
//   the lr as a tensor  at::_fused_adamw_'s tensor-lr form, filled before each replay
//   warm-up             the first steps run eagerly on the capture stream
//                       (real steps, the same ops), so cuBLAS and the
//                       allocator are set up before capture
// Only with CUDA, one rank and --grad-accum 1 (a collective inside the
// graph, or several micro-batches, are not captured); why_not() says which
// condition fails, and the trainer then runs the ordinary step.
#pragma once
#include <memory>
#include <string>

#include <torch/optim/adamw.h>

#include "model/transformer.h"
#include "train/train_config.h"

namespace ropelab::train {

// "" when the step can be captured; else the reason it runs eagerly.
std::string cuda_graph_why_not(const TrainConfig& cfg, bool distributed);

class CudaGraphStep {
 public:
  CudaGraphStep(model::Transformer& m, torch::optim::AdamW& opt, const TrainConfig& cfg, const at::Device& dev);
  ~CudaGraphStep();
  // One step on `windows` (int64 [B, T+1] on the CPU) at learning rate lr.
  void run(const at::Tensor& windows, double lr);
  // The last step's loss and pre-clip gradient norm (each a host sync).
  double loss() const;
  double grad_norm() const;
  // Writes the step counts the graph advanced on the device back into the
  // optimizer's state (before a checkpoint saves it).
  void sync_optimizer(torch::optim::AdamW& opt) const;

  struct State;

 private:
  std::unique_ptr<State> s_;
};

}  // namespace ropelab::train
