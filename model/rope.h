// Rotary position embedding (GPT-NeoX / Llama "rotate half" layout).
// Pair i of a head's first rotary_dim dims, (x_i, x_{i+rd/2}), rotates by
// angle pos * inv_freq[i], inv_freq[i] = theta^(-2i/rd). Context-extension
// methods change theta, the positions or inv_freq; this code stays one.
#pragma once
#include <ATen/ATen.h>

namespace ropelab::model {

// [rotary_dim/2] float64: theta^(-2i/rotary_dim), made on `device` (no host
// copy inside a forward: a CUDA graph capture forbids one).
at::Tensor rope_inv_freq(double theta, int64_t rotary_dim, const at::Device& device = at::kCPU);

// NTK-aware base scaling by α (also dynamic NTK's, with its α of the length):
// θ·α^(rd/(rd−2)), so the slowest pair stretches by exactly α.
double ntk_aware_theta(double theta, double alpha, int64_t rotary_dim);

// cos and sin of positions x inv_freq, both [T, rotary_dim/2] in `dtype`,
// computed in float64 on the positions' device.
// positions: int64 [T]; position_scale divides positions (linear interpolation).
struct RopeTables { at::Tensor cos, sin; };
RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& positions, double position_scale,
                       at::ScalarType dtype);

// x: [B, H, T, d_head]; rotates the first 2*cos.size(-1) dims, passes the rest.
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& t);

}  // namespace ropelab::model
