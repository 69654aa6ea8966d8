#include "train/adamw.h"

#include <torch/version.h>

#include <sstream>
#include <string>
#include <type_traits>

namespace ropelab::train {

torch::optim::AdamW make_optimizer(model::Transformer& m, const TrainConfig& c) {
  // Weight decay on matrices only; norms' gains and biases are not pulled towards zero.
  std::vector<at::Tensor> decay, no_decay;
  for (auto& p : m->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto opts = torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(c.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(0.0)));
  return torch::optim::AdamW(std::move(groups), opts);
}

bool fused_adamw_available(const at::Device& device) {
#if TORCH_VERSION_MAJOR >= 2
  return device.is_cuda() || (device.is_cpu() && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 4));
#else
  (void)device;
  return false;
#endif
}

namespace {
// libtorch 1.x keys optimizer state by the TensorImpl's address as a string, 2.x by the address.
template <class Key>
Key state_key(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;  // what 1.x's c10::guts::to_string writes
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}
}  // namespace

torch::optim::AdamWParamState& adamw_state(torch::optim::AdamW& opt, const at::Tensor& p) {
  auto& slot = opt.state()[state_key<typename std::decay_t<decltype(opt.state())>::key_type>(p)];
  if (!slot) {
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(0);
    s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
    s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
    slot = std::move(s);
  }
  return static_cast<torch::optim::AdamWParamState&>(*slot);
}

void adamw_step(torch::optim::AdamW& opt, bool fused) {
  const auto& first = opt.param_groups().front().params();
  if (!fused || first.empty() || !fused_adamw_available(first.front().device())) {
    opt.step();
    return;
  }
#if TORCH_VERSION_MAJOR >= 2
  torch::NoGradGuard no_grad;
  for (auto& group : opt.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& s = adamw_state(opt, p);
      s.step(s.step() + 1);
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(s.exp_avg());
      exp_avg_sqs.push_back(s.exp_avg_sq());
      // The kernel reads the step count (already advanced) for its bias corrections.
      steps.push_back(at::full({}, double(s.step()), p.options().dtype(at::kFloat)));
    }
    if (params.empty()) continue;
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, steps, o.lr(), std::get<0>(o.betas()),
                      std::get<1>(o.betas()), o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
  }
#endif
}

}  // namespace ropelab::train
