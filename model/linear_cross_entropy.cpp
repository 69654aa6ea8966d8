#include "model/linear_cross_entropy.h"

#include <torch/autograd.h>

namespace ropelab::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct LinearCrossEntropy : public torch::autograd::Function<LinearCrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, int64_t chunk) {
    const int64_t N = hidden.size(0);
    auto grad_hidden = at::empty_like(hidden);
    auto grad_weight = at::zeros(weight.sizes(), weight.options().dtype(at::kFloat));
    auto total = at::zeros({}, hidden.options().dtype(at::kFloat));
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      const auto h = hidden.narrow(0, s, n), t = targets.narrow(0, s, n).unsqueeze(1);
      auto logits = at::matmul(h, weight.t()).to(at::kFloat);  // [n, V]: the only logits alive
      const auto lse = at::logsumexp(logits, -1, /*keepdim=*/true);
      total += (lse - logits.gather(1, t)).sum();
      // d(mean loss)/d(logits) = (softmax - one_hot(target)) / N, made in place of the logits.
      auto g = logits.sub_(lse).exp_();
      g.scatter_add_(1, t, at::full({n, 1}, -1.0, g.options())).div_(double(N));
      grad_hidden.narrow(0, s, n).copy_(at::matmul(g.to(weight.scalar_type()), weight));
      grad_weight.add_(at::matmul(g.t(), h.to(at::kFloat)));
    }
    ctx->save_for_backward({grad_hidden, grad_weight.to(weight.scalar_type())});
    return total / double(N);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const auto& g = grad_out[0];
    return {saved[0] * g.to(saved[0].scalar_type()), saved[1] * g.to(saved[1].scalar_type()), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

at::Tensor linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                int64_t chunk) {
  return LinearCrossEntropy::apply(hidden, weight, targets, std::max<int64_t>(chunk, 1));
}

}  // namespace ropelab::model
