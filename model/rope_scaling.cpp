#include "model/rope_scaling.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "common/text.h"
#include "theory/closed_forms.h"
#include "model/rope.h"
#include "model/trained_rope.h"

namespace ropelab::model {

std::string ScalingMethod::label() const {
  if (kind == "none" || kind == "logn") return kind;
  if (alpha_opt) return kind + ":alpha_opt";
  std::ostringstream s;
  s << kind << ":" << factor;
  return s.str();
}

std::vector<ScalingMethod> parse_scaling_methods(const std::string& list) {
  std::vector<ScalingMethod> out;
  for (const auto& item : text::split(list)) {
    ScalingMethod m;
    const auto colon = item.find(':');
    m.kind = item.substr(0, colon);
    const std::string arg = colon == std::string::npos ? "" : item.substr(colon + 1);
    const bool takes_factor = m.kind == "pi" || m.kind == "ntk" || m.kind == "ntk-aware" || m.kind == "yarn";
    if (m.kind == "none" || m.kind == "logn") {
      if (!arg.empty()) throw Error("scaling method \"" + item + "\": " + m.kind + " takes no factor");
    } else if (takes_factor || m.kind == "dynamic") {
      if (arg.empty() && m.kind != "dynamic") throw Error("scaling method \"" + item + "\": needs a factor, e.g. " + m.kind + ":4");
      if (arg == "alpha_opt" && (m.kind == "ntk" || m.kind == "ntk-aware")) {
        m.alpha_opt = true;
      } else if (!arg.empty()) {
        size_t used = 0;
        try { m.factor = std::stod(arg, &used); } catch (...) { used = 0; }
        if (used != arg.size() || !(m.factor >= 1.0))
          throw Error("scaling method \"" + item + "\": factor must be a number >= 1" +
                      (m.kind.rfind("ntk", 0) == 0 ? " or alpha_opt" : ""));
      }
    } else {
      throw Error("unknown scaling method \"" + item + "\" (expected none, pi:S, ntk:A, ntk-aware:A, dynamic[:S], yarn:S, logn)");
    }
    out.push_back(m);
  }
  if (out.empty()) throw Error("no scaling method given");
  return out;
}

double scaling_factor(const ScalingMethod& m, const ModelConfig& cfg, int64_t target_length, double gamma_target) {
  return m.alpha_opt ? closed_forms::alpha_opt(cfg.rope_theta, double(target_length), gamma_target) : m.factor;
}

namespace {
double ntk_aware_theta(double theta, double alpha, int64_t rd) {
  return theta * std::pow(alpha, double(rd) / double(rd - 2));
}

// YaRN (Peng et al. 2023): frequencies whose wavelength fits in the training
// context fewer than `low` times are interpolated (ω/S), more than `high`
// times kept, with a linear ramp in between.
at::Tensor yarn_inv_freq(double theta, int64_t rd, double s, int64_t T_train, double low = 1.0, double high = 32.0) {
  auto inv = rope_inv_freq(theta, rd);
  auto rotations = double(T_train) * inv / (2.0 * M_PI);  // times each pair turns within T_train
  auto keep = at::clamp((rotations - low) / (high - low), 0.0, 1.0);
  return inv / s * (1.0 - keep) + inv * keep;
}
}  // namespace

AttentionSettings scaling_settings(const ScalingMethod& m, const ModelConfig& cfg, int64_t seq_len,
                                   int64_t target_length, double gamma_target) {
  if (cfg.rope_scaling != "none") {
    // A model trained with a RoPE scaling (Llama 3.1's llama3, YaRN, ...) is
    // evaluated as trained: another method on top would be a new method.
    if (m.kind != "none")
      throw Error("scaling method \"" + m.label() + "\": the model applies its own rope_scaling (" + cfg.rope_scaling +
                  ") from config.json; ropelab evaluates such a model with --scaling none only");
    return trained_attention(cfg, seq_len);
  }
  AttentionSettings s;
  s.rope_theta = cfg.rope_theta;
  const int64_t rd = cfg.rotary_dim();
  const double f = scaling_factor(m, cfg, target_length, gamma_target);
  if (m.kind == "pi") {
    s.position_scale = f;
  } else if (m.kind == "ntk") {
    s.rope_theta = cfg.rope_theta * f;
  } else if (m.kind == "ntk-aware") {
    s.rope_theta = ntk_aware_theta(cfg.rope_theta, f, rd);
  } else if (m.kind == "dynamic") {
    if (seq_len > cfg.T_train)
      s.rope_theta = ntk_aware_theta(cfg.rope_theta, f * double(seq_len) / double(cfg.T_train) - (f - 1.0), rd);
  } else if (m.kind == "yarn") {
    s.inv_freq = yarn_inv_freq(cfg.rope_theta, rd, f, cfg.T_train);
    const double mscale = 0.1 * std::log(f) + 1.0;
    s.score_multiplier = mscale * mscale;  // as HF: cos and sin both scaled by mscale
  } else if (m.kind == "logn") {
    s.logn_train_length = cfg.T_train;
  }
  return s;
}

}  // namespace ropelab::model
