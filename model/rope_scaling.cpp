#include "model/rope_scaling.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/text.h"
#include "theory/closed_forms.h"
#include "model/rope_methods.h"
#include "model/trained_rope.h"

namespace ropelab::model {

std::string ScalingMethod::label() const {
  const RopeMethod& m = rope_method(kind);
  std::ostringstream s;
  s << kind;
  if (alpha_opt) s << (measured_gamma ? ":alpha_opt_measured" : ":alpha_opt");
  else if (!m.params.empty() && m.params[0].name == std::string("factor")) s << ":" << factor;
  for (const auto& [k, v] : params) s << ":" << k << "=" << v;
  return s.str();
}

bool factor_allowed(const std::string& kind, double factor) {
  const RopeMethod& m = rope_method(kind);
  return std::isfinite(factor) && (m.factor_any_positive ? factor > 0 : factor >= 1.0);
}

namespace {

std::string domain_text(const std::string& kind) {
  return rope_method(kind).factor_any_positive ? "a number > 0" : "a number >= 1";
}

bool takes_factor(const RopeMethod& m) {
  return std::any_of(m.params.begin(), m.params.end(), [](const RopeParam& p) { return p.name == std::string("factor"); });
}

// A whole-string number, or NaN.
double number(const std::string& s) {
  size_t used = 0;
  double v = NAN;
  try { v = std::stod(s, &used); } catch (...) { used = 0; }
  return used == s.size() && !s.empty() ? v : NAN;
}

// VALUE of KEY=VALUE as a parameter value; a list is written a/b/c (a comma separates methods).
nlohmann::json param_value(const std::string& key, const std::string& v) { return rope_param_from_text(key, v, '/'); }

ScalingMethod parse_one(const std::string& item) {
  ScalingMethod m;
  const std::string where = "scaling method \"" + item + "\"";
  const RopeSpecText spec = split_rope_spec(item, where);
  m.kind = spec.kind;
  if (!is_rope_method(m.kind))
    throw Error("unknown scaling method \"" + item + "\" (expected KIND[:FACTOR][:KEY=VALUE...] or KIND-sweep:LO..HI:xR, KIND one of " +
                rope_method_names() + "; ropelab rope list)");
  const RopeMethod& method = rope_method(m.kind);
  if (!spec.factor.empty()) {
    const std::string& arg = spec.factor;
    if (!takes_factor(method)) throw Error(where + ": " + m.kind + " takes no factor");
    if ((arg == "alpha_opt" || arg == "alpha_opt_measured") && method.closed_form) {
      m.alpha_opt = true;
      m.measured_gamma = arg == "alpha_opt_measured";
    } else {
      m.factor = number(arg);
      if (!factor_allowed(m.kind, m.factor))
        throw Error(where + ": factor must be " + domain_text(m.kind) +
                    (method.closed_form ? ", alpha_opt or alpha_opt_measured" : ""));
    }
  } else if (method.factor_required) {
    throw Error(where + ": needs a factor, e.g. " + m.kind + ":4");
  }
  RopeParams check;
  check.type = method.name;
  for (const auto& [key, value] : spec.params) {
    set_rope_param(check, key, param_value(key, value), where);  // names a bad key or value now
    m.params.emplace_back(key, value);
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
  if (!is_rope_method(kind) || !rope_method(kind).factor_required)
    throw bad("KIND must be a method whose factor is required (pi/linear, ntk, ntk-aware, yarn, llama3)");
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
RopeParams scaling_params(const ScalingMethod& m, const ModelConfig& cfg, int64_t target_length, double gamma_target) {
  RopeParams p;
  p.type = rope_method(m.kind).name;
  p.factor = scaling_factor(m, cfg, target_length, gamma_target);
  for (const auto& [k, v] : m.params) set_rope_param(p, k, param_value(k, v), "scaling method \"" + m.label() + "\"");
  return p;
}
}  // namespace

AttentionSettings scaling_settings(const ScalingMethod& m, const ModelConfig& cfg, int64_t seq_len,
                                   int64_t target_length, double gamma_target) {
  const bool plain = std::string(rope_method(m.kind).name) == "default";
  if (!cfg.plain_rope()) {
    // A model trained with a RoPE method (Llama 3.1's llama3, YaRN, ...) is
    // evaluated as trained: another method on top would be a new method.
    if (!plain)
      throw Error("scaling method \"" + m.label() + "\": the model applies its own RoPE method (" + cfg.rope_scaling +
                  ") from its config; ropelab evaluates such a model with --scaling none only");
    return trained_attention(cfg, seq_len);
  }
  const RopeParams p = scaling_params(m, cfg, target_length, gamma_target);
  const RopeGeometry g = cfg.rope_geometry();
  check_rope_params(p, g, "scaling method \"" + m.label() + "\"");
  if (rotary_dims(p, g) != cfg.rotary_dim())
    throw Error("scaling method \"" + m.label() + "\": rotates " + std::to_string(rotary_dims(p, g)) +
                " dims of each head where the model rotates " + std::to_string(cfg.rotary_dim()) +
                " (proportional rotates whole heads: the model must too)");
  return rope_attention(p, g, seq_len);
}

}  // namespace ropelab::model
