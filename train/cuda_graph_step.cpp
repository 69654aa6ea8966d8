#include "train/cuda_graph_step.h"

#include <torch/version.h>

#include "common/error.h"
#include "train/adamw.h"
#include "train/autocast.h"

#if defined(ROPELAB_CUDA) && TORCH_VERSION_MAJOR >= 2
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define ROPELAB_CUDA_GRAPH 1
#endif

namespace ropelab::train {

std::string cuda_graph_why_not(const TrainConfig& cfg, bool distributed) {
  if (!cfg.cuda_graph) return "--cuda-graph 0";
  if (cfg.device != "cuda") return "not on CUDA";
  // A RoPE method other than plain RoPE makes its frequencies on the host in
  // each forward (model/trained_rope.h): a copy a graph capture forbids.
  if (!cfg.model.plain_rope()) return "RoPE method " + cfg.model.rope_scaling + " (its frequencies come from the host)";
  if (!cfg.model.plain_rope_of("sliding"))
    return "sliding layers' RoPE method " + cfg.model.sliding_rope + " (its frequencies come from the host)";
#if !defined(ROPELAB_CUDA_GRAPH)
  return "this build has no CUDA graphs (libtorch without CUDA, or 1.x)";
#else
  if (distributed) return "more than one rank (the all-reduce is not captured)";
  if (cfg.grad_accum != 1) return "--grad-accum above 1";
  if (!cfg.fused_adamw) return "--fused-adamw 0 (the captured step needs the fused kernel's tensor lr)";
  return "";
#endif
}

#if defined(ROPELAB_CUDA_GRAPH)

struct CudaGraphStep::State {
  model::Transformer m;
  const TrainConfig cfg;
  at::Device dev;
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAGraph graph;
  int64_t eager_left = 3;  // warm-up steps before capture
  bool captured = false;
  at::Tensor windows, lr, loss, norm;  // the static device buffers
  // Per parameter group (weight decay differs): parameters, gradients and AdamW state.
  struct Group {
    double weight_decay;
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
  };
  std::vector<Group> groups;
  double beta1, beta2, eps;

  State(model::Transformer model, torch::optim::AdamW& opt, const TrainConfig& c, const at::Device& d)
      : m(std::move(model)), cfg(c), dev(d), stream(c10::cuda::getStreamFromPool(false, d.index())) {
    const int64_t B = cfg.batch_size, T = cfg.model.T_train;
    auto on = at::TensorOptions().device(dev);
    windows = at::zeros({B, T + 1}, on.dtype(at::kLong));
    lr = at::zeros({}, on.dtype(at::kFloat));
    loss = at::zeros({}, on.dtype(at::kFloat));
    norm = at::zeros({}, on.dtype(at::kFloat));
    bind_optimizer(opt);
  }

  // The optimizer's own state tensors (made as torch::optim::AdamW makes
  // them), so checkpoints save what the graph updates in place.
  void bind_optimizer(torch::optim::AdamW& opt) {
    torch::NoGradGuard no_grad;
    for (auto& group : opt.param_groups()) {
      const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
      beta1 = std::get<0>(o.betas());
      beta2 = std::get<1>(o.betas());
      eps = o.eps();
      Group g{o.weight_decay(), {}, {}, {}, {}, {}};
      for (auto& p : group.params()) {
        if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
        auto& st = adamw_state(opt, p);
        g.params.push_back(p);
        g.grads.push_back(p.grad());
        g.exp_avgs.push_back(st.exp_avg());
        g.exp_avg_sqs.push_back(st.exp_avg_sq());
        g.steps.push_back(at::full({}, double(st.step()), p.options().dtype(at::kFloat)));
      }
      groups.push_back(std::move(g));
    }
  }

  // The captured body: everything on the device, nothing read back.
  void body() {
    for (auto& g : groups)
      for (auto& grad : g.grads) grad.zero_();
    const int64_t T = cfg.model.T_train;
    at::Tensor l;
    {
      AutocastScope autocast(dev, cfg.autocast_on("cuda") == "bf16");
      l = m->loss(windows.narrow(1, 0, T), windows.narrow(1, 1, T), nullptr, cfg.ce_chunk_on("cuda"));
    }
    l.backward();
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> norms;
    for (auto& g : groups)
      for (auto& grad : g.grads) norms.push_back(at::linalg_vector_norm(grad.to(at::kFloat), 2));
    auto total = at::linalg_vector_norm(at::stack(norms), 2);
    if (cfg.grad_clip > 0) {
      auto coef = at::clamp_max(cfg.grad_clip / (total + 1e-6), 1.0);
      for (auto& g : groups)
        for (auto& grad : g.grads) grad.mul_(coef.to(grad.scalar_type()));
    }
    for (auto& g : groups) {
      for (auto& s : g.steps) s.add_(1.0);
      at::_fused_adamw_(g.params, g.grads, g.exp_avgs, g.exp_avg_sqs, {}, g.steps, lr, beta1, beta2, g.weight_decay,
                        eps, /*amsgrad=*/false, /*maximize=*/false);
    }
    loss.copy_(l.detach());
    norm.copy_(total);
  }
};

CudaGraphStep::CudaGraphStep(model::Transformer& m, torch::optim::AdamW& opt, const TrainConfig& cfg,
                             const at::Device& dev)
    : s_(std::make_unique<State>(m, opt, cfg, dev)) {}
CudaGraphStep::~CudaGraphStep() = default;

void CudaGraphStep::run(const at::Tensor& windows, double lr) {
  auto& s = *s_;
  c10::cuda::CUDAStreamGuard on_stream(s.stream);
  s.windows.copy_(windows, /*non_blocking=*/true);
  s.lr.fill_(lr);
  if (s.eager_left > 0) {  // warm-up: real steps, run as ordinary kernels
    --s.eager_left;
    s.body();
    return;
  }
  if (!s.captured) {
    s.stream.synchronize();
    s.graph.capture_begin();
    s.body();
    s.graph.capture_end();
    s.captured = true;
  }
  s.graph.replay();
}

double CudaGraphStep::loss() const { return s_->loss.item<double>(); }
double CudaGraphStep::grad_norm() const { return s_->norm.item<double>(); }

void CudaGraphStep::sync_optimizer(torch::optim::AdamW& opt) const {
  for (const auto& g : s_->groups)
    for (size_t i = 0; i < g.params.size(); ++i)
      adamw_state(opt, g.params[i]).step(static_cast<int64_t>(g.steps[i].item<double>()));
}

#else  // no CUDA graphs in this build: cuda_graph_why_not() keeps the trainer from making one

struct CudaGraphStep::State {};
CudaGraphStep::CudaGraphStep(model::Transformer&, torch::optim::AdamW&, const TrainConfig&, const at::Device&) {
  throw Error("CUDA graphs are not in this build");
}
CudaGraphStep::~CudaGraphStep() = default;
void CudaGraphStep::run(const at::Tensor&, double) {}
double CudaGraphStep::loss() const { return 0; }
double CudaGraphStep::grad_norm() const { return 0; }
void CudaGraphStep::sync_optimizer(torch::optim::AdamW&) const {}

#endif

}  // namespace ropelab::train
