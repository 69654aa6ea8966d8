// bf16 autocast over a scope: the forward pass of a training step, eager or
// captured in a CUDA graph (train/cuda_graph_step.cpp).
#pragma once
#include <ATen/autocast_mode.h>
#include <c10/core/Device.h>
#include <torch/version.h>

namespace ropelab::train {

// bf16 autocast for the forward pass (--autocast: on CUDA by default; on the
// CPU when asked, where it is a check of the same numerics, not a speed-up).
class AutocastScope {
 public:
  AutocastScope(const at::Device& dev, bool on) : on_(on), cuda_(dev.is_cuda()) { set(true); }
  ~AutocastScope() { set(false); }

 private:
  void set(bool enable) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR >= 2
    const auto type = cuda_ ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_enabled(type, enable);
    if (enable) at::autocast::set_autocast_dtype(type, at::kBFloat16);
#else
    if (cuda_) {
      at::autocast::set_enabled(enable);
      if (enable) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    } else {
      at::autocast::set_cpu_enabled(enable);
      if (enable) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    }
#endif
    if (!enable) at::autocast::clear_cache();
  }
  bool on_, cuda_;
};

}  // namespace ropelab::train
