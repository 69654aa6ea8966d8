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
  if (alpha_opt) return kind + (measured_gamma ? ":alpha_opt_measured" : ":alpha_opt");
  std::ostringstream s;
  s << kind << ":" << factor;
  return s.str();
}

bool factor_allowed(const std::string& kind, double factor) {
  const bool any_positive = kind == "ntk" || kind == "ntk-aware";
  return std::isfinite(factor) && (any_positive ? factor > 0 : factor >= 1.0);
}

namespace {

bool takes_factor(const std::string& kind) {
  return kind == "pi" || kind == "ntk" || kind == "ntk-aware" || kind == "yarn";
}

std::string domain_text(const std::string& kind) {
  return kind == "ntk" || kind == "ntk-aware" ? "a number > 0" : "a number >= 1";
}

// A whole-string number, or NaN.
double number(const std::string& s) {
  size_t used = 0;
  double v = NAN;
  try { v = std::stod(s, &used); } catch (...) { used = 0; }
  return used == s.size() && !s.empty() ? v : NAN;
}

ScalingMethod parse_one(const std::string& item) {
  ScalingMethod m;
  const auto colon = item.find(':');
  m.kind = item.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : item.substr(colon + 1);
  if (m.kind == "none" || m.kind == "logn") {
    if (!arg.empty()) throw Error("scaling method \"" + item + "\": " + m.kind + " takes no factor");
  } else if (takes_factor(m.kind) || m.kind == "dynamic") {
    if (arg.empty() && m.kind != "dynamic") throw Error("scaling method \"" + item + "\": needs a factor, e.g. " + m.kind + ":4");
    const bool closed_form_ok = m.kind == "ntk" || m.kind == "ntk-aware" || m.kind == "yarn";
    if ((arg == "alpha_opt" || arg == "alpha_opt_measured") && closed_form_ok) {
      m.alpha_opt = true;
      m.measured_gamma = arg == "alpha_opt_measured";
    } else if (!arg.empty()) {
      m.factor = number(arg);
      if (!factor_allowed(m.kind, m.factor))
        throw Error("scaling method \"" + item + "\": factor must be " + domain_text(m.kind) +
                    (closed_form_ok ? ", alpha_opt or alpha_opt_measured" : ""));
    }
  } else {
    throw Error("unknown scaling method \"" + item +
                "\" (expected none, pi:S, ntk:A, ntk-aware:A, dynamic[:S], yarn:S, logn, KIND-sweep:LO..HI:xR)");
  }
  return m;
}

// "ntk" for "ntk-sweep:...", "" when the item is no sweep.
std::string sweep_kind(const std::string& item) {
  const std::string head = item.substr(0, item.find(':')), suffix = "-sweep";
  if (head.size() <= suffix.size() || !text::ends_with(head, suffix)) return "";
  return head.substr(0, head.size() - suffix.size());
}

// "KIND-sweep:LO..HI:xR" -> KIND:LO, KIND:LO·R, ... while <= HI (with room for rounding).
std::vector<ScalingMethod> parse_sweep(const std::string& item) {
  const auto bad = [&](const std::string& why) {
    return Error("scaling sweep \"" + item + "\": " + why + " (expected KIND-sweep:LO..HI:xR, e.g. ntk-sweep:0.25..64:x2)");
  };
  const auto colon = item.find(':');
  const std::string kind = sweep_kind(item);
  if (!takes_factor(kind)) throw bad("KIND must be pi, ntk, ntk-aware or yarn");
  const std::string arg = colon == std::string::npos ? "" : item.substr(colon + 1);
  const auto dots = arg.find(".."), step = arg.find(":x");
  if (dots == std::string::npos || step == std::string::npos || step < dots) throw bad("malformed");
  const double lo = number(arg.substr(0, dots)), hi = number(arg.substr(dots + 2, step - dots - 2)),
               ratio = number(arg.substr(step + 2));
  if (!factor_allowed(kind, lo) || !factor_allowed(kind, hi)) throw bad("LO and HI must be " + domain_text(kind));
  if (!(hi >= lo)) throw bad("HI must be >= LO");
  if (!(ratio > 1) || !std::isfinite(ratio)) throw bad("the ratio R must be a number > 1");
  std::vector<ScalingMethod> out;
  for (int k = 0; lo * std::pow(ratio, k) <= hi * (1 + 1e-9); ++k) {
    if (k == 64) throw bad("more than 64 points");
    const double f = lo * std::pow(ratio, k);  // not a running product: no drift over the points
    ScalingMethod m;
    m.kind = kind;
    m.factor = f;
    m.sweep = item;
    out.push_back(m);
  }
  return out;
}

}  // namespace

std::vector<ScalingMethod> parse_scaling_methods(const std::string& list) {
  std::vector<ScalingMethod> out;
  for (const auto& item : text::split(list)) {
    if (!sweep_kind(item).empty()) {
      for (auto& m : parse_sweep(item)) out.push_back(std::move(m));
    } else {
      out.push_back(parse_one(item));
    }
  }
  if (out.empty()) throw Error("no scaling method given");
  return out;
}

double scaling_factor(const ScalingMethod& m, const ModelConfig& cfg, int64_t target_length, double gamma_target) {
  if (!m.alpha_opt) return m.factor;
  if (m.measured_gamma && !m.gamma)
    throw Error("scaling method \"" + m.label() + "\" needs the checkpoint's measured γ (--gamma-from)");
  return closed_forms::alpha_opt(cfg.rope_theta, double(target_length), m.measured_gamma ? *m.gamma : gamma_target);
}

std::string scaling_unavailable(const ScalingMethod& m, const ModelConfig& cfg, int64_t target_length,
                                double gamma_target) {
  if (m.alpha_opt) {
    const double g = m.measured_gamma ? m.gamma.value_or(NAN) : gamma_target;
    if (!(g > -1 && g < 1)) {
      std::ostringstream s;
      s << "α_opt is undefined at γ = " << g << " (θ_design needs γ in (-1, 1))";
      return s.str();
    }
  }
  const double f = scaling_factor(m, cfg, target_length, gamma_target);
  if (factor_allowed(m.kind, f)) return "";
  std::ostringstream s;
  s << m.label() << " resolves to " << f << " at length " << target_length << ", outside " << m.kind
    << "'s domain (" << domain_text(m.kind) << ")";
  return s.str();
}

namespace {
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
