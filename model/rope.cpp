#include "model/rope.h"

#include <cmath>

namespace ropelab::model {

at::Tensor rope_inv_freq(double theta, int64_t rotary_dim, const at::Device& device) {
  auto i = at::arange(0, rotary_dim, 2, at::TensorOptions().dtype(at::kDouble).device(device));
  return at::pow(theta, -i / static_cast<double>(rotary_dim));
}

RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& positions, double attention_factor,
                       at::ScalarType dtype) {
  // Angles in float64: at 1e5 positions float32 angles lose the low frequencies' phase.
  auto angles = at::outer(positions.to(at::kDouble), inv_freq.to(positions.device(), at::kDouble));
  if (attention_factor == 1.0) return {at::cos(angles).to(dtype), at::sin(angles).to(dtype)};
  return {(at::cos(angles) * attention_factor).to(dtype), (at::sin(angles) * attention_factor).to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTables& t) {
  const int64_t half = t.cos.size(-1), rd = 2 * half;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = at::cat({x1 * t.cos - x2 * t.sin, x2 * t.cos + x1 * t.sin}, -1);
  if (rd == x.size(-1)) return rotated;
  return at::cat({rotated, x.narrow(-1, rd, x.size(-1) - rd)}, -1);
}

}  // namespace ropelab::model
