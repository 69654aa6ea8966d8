#include "model/trained_rope.h"

#include <cmath>

#include "model/rope.h"

namespace ropelab::model {
namespace {

// The context the scaling extends from: original_max_position_embeddings, else T_train.
double original_context(const ModelConfig& c) {
  return double(c.rope_original_max_positions > 0 ? c.rope_original_max_positions : c.T_train);
}

// YaRN: dims whose wavelength turns fewer than beta_slow times in the
// original context are interpolated (ω/S), more than beta_fast times kept,
// with a linear ramp over the dim index between the two (floored/ceiled, as HF's truncate).
at::Tensor yarn_inv_freq(const ModelConfig& c) {
  const double base = c.rope_theta, dim = double(c.rotary_dim()), L = original_context(c);
  auto correction_dim = [&](double rotations) { return dim * std::log(L / (rotations * 2 * M_PI)) / (2 * std::log(base)); };
  const double low = std::max(std::floor(correction_dim(c.rope_beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(c.rope_beta_slow)), dim - 1);
  if (low == high) high += 0.001;
  auto ramp = at::clamp((at::arange(int64_t(dim) / 2, at::kDouble) - low) / (high - low), 0.0, 1.0);
  auto extrapolate = 1.0 - ramp;  // 1: keep the trained frequency
  auto inv = rope_inv_freq(base, c.rotary_dim());
  return inv / c.rope_scaling_factor * (1.0 - extrapolate) + inv * extrapolate;
}

// Llama 3: wavelengths longer than original/low_freq_factor divided by the
// factor, shorter than original/high_freq_factor kept, smoothly in between.
at::Tensor llama3_inv_freq(const ModelConfig& c) {
  const double L = original_context(c), f = c.rope_scaling_factor;
  auto inv = rope_inv_freq(c.rope_theta, c.rotary_dim());
  auto wavelen = 2 * M_PI / inv;
  auto scaled = at::where(wavelen > L / c.rope_low_freq_factor, inv / f, inv);
  auto smooth = (L / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / f + smooth * scaled;
  auto medium = (wavelen >= L / c.rope_high_freq_factor).logical_and(wavelen <= L / c.rope_low_freq_factor);
  return at::where(medium, smoothed, scaled);
}

}  // namespace

AttentionSettings trained_attention(const ModelConfig& c, int64_t seq_len) {
  AttentionSettings s;
  s.rope_theta = c.rope_theta;
  const std::string& kind = c.rope_scaling;
  const int64_t rd = c.rotary_dim();
  if (kind == "linear") {
    s.position_scale = c.rope_scaling_factor;
  } else if (kind == "dynamic") {
    // Dynamic NTK: the base grows once the sequence outgrows the original context.
    const double L = original_context(c), f = c.rope_scaling_factor;
    if (double(seq_len) > L) s.rope_theta = ntk_aware_theta(c.rope_theta, f * seq_len / L - (f - 1), rd);
  } else if (kind == "yarn") {
    s.inv_freq = yarn_inv_freq(c);
    const double mscale = c.rope_attention_factor > 0 ? c.rope_attention_factor
                          : c.rope_scaling_factor <= 1 ? 1.0 : 0.1 * std::log(c.rope_scaling_factor) + 1.0;
    s.score_multiplier = mscale * mscale;  // cos and sin are both scaled by it
  } else if (kind == "llama3") {
    s.inv_freq = llama3_inv_freq(c);
  } else if (kind == "longrope") {
    const double L = original_context(c);
    const auto& ext = double(seq_len) > L ? c.rope_long_factor : c.rope_short_factor;
    s.inv_freq = rope_inv_freq(c.rope_theta, rd) / at::tensor(ext, at::kDouble);
    // factor = the extended context over the original one (HF's default attention factor).
    const double f = c.rope_scaling_factor;
    const double mscale = c.rope_attention_factor > 0 ? c.rope_attention_factor
                          : f <= 1 ? 1.0 : std::sqrt(1 + std::log(f) / std::log(L));
    s.score_multiplier = mscale * mscale;
  }
  return s;
}

}  // namespace ropelab::model
