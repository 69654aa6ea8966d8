// Rotary position embedding (GPT-NeoX / Llama "rotate half" layout).
// Pair i of a head's first rotary_dim dims, (x_i, x_{i+rd/2}), rotates by
// angle pos * inv_freq[i], inv_freq[i] = theta^(-2i/rd). Every RoPE method
// (model/rope_methods.h) is another inv_freq and attention factor; this code stays one.
#pragma once
#include <ATen/ATen.h>

namespace ropelab::model {

// [rotary_dim/2] float64: theta^(-2i/rotary_dim), made on `device` (no host
// copy inside a forward: a CUDA graph capture forbids one).
at::Tensor rope_inv_freq(double theta, int64_t rotary_dim, const at::Device& device = at::kCPU);

// cos and sin of positions x inv_freq, both [T, rotary_dim/2] in `dtype`,
// computed in float64 on the positions' device, both multiplied by
// `attention_factor` (YaRN's and LongRoPE's; transformers' attention_scaling).
// positions: int64 [T].
struct RopeTables { at::Tensor cos, sin; };
RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& positions, double attention_factor,
                       at::ScalarType dtype);

// x: [B, H, T, d_head]; rotates the first 2*cos.size(-1) dims, passes the rest.
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& t);

}  // namespace ropelab::model
