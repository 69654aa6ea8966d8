// The LM head and its cross-entropy in one step, over chunks of rows, so the
// [tokens, vocab] float32 logits are never held for the whole batch: each
// chunk's logits give its loss and, at once, its gradients with respect to
// the hidden states and the head weight; backward only scales those.
// Memory: one chunk's logits + the hidden-state and weight gradients,
// instead of all logits (in float32, and their softmax for backward).
#pragma once
#include <ATen/ATen.h>

namespace ropelab::model {

// mean over rows of cross_entropy(hidden @ weight^T, targets), with autograd
// to `hidden` [N, d] and `weight` [V, d]; targets int64 [N]; chunk rows per step.
at::Tensor linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                int64_t chunk);

}  // namespace ropelab::model
