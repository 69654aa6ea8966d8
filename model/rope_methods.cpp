#include "model/rope_methods.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/text.h"

namespace ropelab::model {
namespace {

// θ^(−2i/dims) for the pairs i < pairs.
std::vector<double> plain(double theta, int64_t dims, int64_t pairs) {
  std::vector<double> inv(size_t(std::max<int64_t>(pairs, 0)));
  for (int64_t i = 0; i < pairs; ++i) inv[size_t(i)] = std::pow(theta, -2.0 * double(i) / double(dims));
  return inv;
}

int64_t rd_of(const RopeParams& p, const RopeGeometry& g) { return rotary_dims(p, g); }
std::vector<double> plain_of(const RopeParams& p, const RopeGeometry& g) {
  return plain(g.theta, rd_of(p, g), rd_of(p, g) / 2);
}
double original_of(const RopeParams& p, const RopeGeometry& g) {
  return double(p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : g.context);
}
// θ·α^(rd/(rd−2)): the slowest pair stretches by exactly α.
double ntk_aware_base(double theta, double alpha, int64_t rd) {
  return theta * std::pow(alpha, double(rd) / double(rd - 2));
}

RopeFrequencies f_default(const RopeParams& p, const RopeGeometry& g, int64_t) { return {plain_of(p, g)}; }

RopeFrequencies f_linear(const RopeParams& p, const RopeGeometry& g, int64_t) {
  auto inv = plain_of(p, g);
  for (auto& x : inv) x /= p.factor;
  return {inv};
}

RopeFrequencies f_ntk(const RopeParams& p, const RopeGeometry& g, int64_t) {
  return {plain(g.theta * p.factor, rd_of(p, g), rd_of(p, g) / 2)};
}

RopeFrequencies f_ntk_aware(const RopeParams& p, const RopeGeometry& g, int64_t) {
  const int64_t rd = rd_of(p, g);
  return {plain(ntk_aware_base(g.theta, p.factor, rd), rd, rd / 2)};
}

// transformers: the length is max(n, C) and C is max_position_embeddings in
// both places (original_max_position_embeddings is not read for dynamic).
RopeFrequencies f_dynamic(const RopeParams& p, const RopeGeometry& g, int64_t seq_len) {
  const int64_t rd = rd_of(p, g);
  const double C = double(g.context), n = std::max(double(seq_len), C), f = p.factor;
  return {plain(ntk_aware_base(g.theta, f * n / C - (f - 1.0), rd), rd, rd / 2)};
}

double yarn_mscale(double scale, double m = 1.0) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }

RopeFrequencies f_yarn(const RopeParams& p, const RopeGeometry& g, int64_t) {
  const int64_t rd = rd_of(p, g);
  const double dim = double(rd), base = g.theta, L = original_of(p, g), f = p.factor;
  auto correction_dim = [&](double rotations) { return dim * std::log(L / (rotations * 2 * M_PI)) / (2 * std::log(base)); };
  double low = correction_dim(p.beta_fast), high = correction_dim(p.beta_slow);
  if (p.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;  // as transformers: no zero-width ramp
  RopeFrequencies out;
  out.inv_freq = plain(base, rd, rd / 2);
  for (int64_t i = 0; i < rd / 2; ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);  // 1: interpolate
    const double w = out.inv_freq[size_t(i)];
    out.inv_freq[size_t(i)] = w / f * ramp + w * (1.0 - ramp);
  }
  out.attention_factor = p.attention_factor > 0 ? p.attention_factor
                         : p.mscale != 0 && p.mscale_all_dim != 0 ? yarn_mscale(f, p.mscale) / yarn_mscale(f, p.mscale_all_dim)
                                                                   : yarn_mscale(f);
  return out;
}

RopeFrequencies f_llama3(const RopeParams& p, const RopeGeometry& g, int64_t) {
  const double L = original_of(p, g), f = p.factor, lo = p.low_freq_factor, hi = p.high_freq_factor;
  auto inv = plain_of(p, g);
  for (auto& w : inv) {
    const double wavelen = 2 * M_PI / w;
    if (wavelen > L / lo) {
      w /= f;  // long wavelengths: interpolated
    } else if (wavelen >= L / hi) {  // the band between: smoothly from interpolated to kept
      const double smooth = (L / wavelen - lo) / (hi - lo);
      w = (1 - smooth) * w / f + smooth * w;
    }  // short wavelengths: kept
  }
  return {inv};
}

RopeFrequencies f_longrope(const RopeParams& p, const RopeGeometry& g, int64_t seq_len) {
  const double L = original_of(p, g), f = p.factor;
  const auto& ext = double(seq_len) > L ? p.long_factor : p.short_factor;
  RopeFrequencies out{plain_of(p, g)};
  for (size_t i = 0; i < out.inv_freq.size() && i < ext.size(); ++i) out.inv_freq[i] /= ext[i];
  out.attention_factor = p.attention_factor > 0 ? p.attention_factor
                         : f <= 1 ? 1.0 : std::sqrt(1 + std::log(f) / std::log(L));
  return out;
}

// The pairs are those of the whole head, (x_i, x_{i+d/2}); the exponent is
// normalised by the whole head dimension, and the pairs past ⌊p·d/2⌋ stand still.
RopeFrequencies f_proportional(const RopeParams& p, const RopeGeometry& g, int64_t) {
  const int64_t d = g.head_dim, angles = int64_t(std::floor(g.rotary_fraction * double(d) / 2));
  auto inv = plain(g.theta, d, d / 2);
  for (int64_t i = 0; i < d / 2; ++i) inv[size_t(i)] = i < angles ? inv[size_t(i)] / p.factor : 0.0;
  return {inv};
}

RopeFrequencies f_logn(const RopeParams& p, const RopeGeometry& g, int64_t) {
  RopeFrequencies out{plain_of(p, g)};
  out.logn_length = g.context;
  return out;
}

const RopeParam kFactor{"factor", "the scaling factor"};
const RopeParam kOriginal{"original_max_position_embeddings", "a whole number > 0 (default: the model's context)"};
const RopeParam kLowFreq{"low_freq_factor", "a number > 0, below high_freq_factor (default 1)"};
const RopeParam kHighFreq{"high_freq_factor", "a number above low_freq_factor (default 4)"};
const RopeParam kBetaFast{"beta_fast", "a number above beta_slow (default 32)"};
const RopeParam kBetaSlow{"beta_slow", "a number > 0 (default 1)"};
const RopeParam kMscale{"mscale", "a number >= 0 (0: unset)"};
const RopeParam kMscaleAll{"mscale_all_dim", "a number >= 0 (0: unset)"};
const RopeParam kTruncate{"truncate", "true or false (default true)"};
const RopeParam kAttention{"attention_factor", "a number > 0 (default: the method's own)"};
const RopeParam kLong{"long_factor", "rotary_dim/2 numbers > 0"};
const RopeParam kShort{"short_factor", "rotary_dim/2 numbers > 0"};

std::string factor_domain(const RopeMethod& m) { return m.factor_any_positive ? "a number > 0" : "a number >= 1"; }

}  // namespace

int64_t rotary_dims(const RopeParams& p, const RopeGeometry& g) {
  if (p.type == "proportional") return g.head_dim;
  return (static_cast<int64_t>(double(g.head_dim) * g.rotary_fraction) / 2) * 2;
}

const std::vector<RopeMethod>& rope_methods() {
  // name, HF rope_type, aliases, summary, params, factor required, factor > 0 allowed,
  // closed form, length-dependent, formula
  static const std::vector<RopeMethod> table = {
      {"default", "default", {"none"}, "plain RoPE: θ^(−2i/rd)", {}, false, false, false, false, f_default},
      {"linear", "linear", {"pi"}, "position interpolation: every frequency / factor", {kFactor}, true, false, false,
       false, f_linear},
      {"ntk", "", {}, "NTK base scaling as the TAF tool applies it: θ' = factor·θ", {kFactor}, true, true, true, false,
       f_ntk},
      {"ntk-aware", "", {}, "NTK-aware: θ' = θ·factor^(rd/(rd−2)), the slowest pair stretched by factor", {kFactor}, true,
       true, true, false, f_ntk_aware},
      {"dynamic", "dynamic", {}, "dynamic NTK: ntk-aware with α = f·n/C − (f−1) once n > C (C = max_position_embeddings)",
       {kFactor}, false, false, false, true, f_dynamic},
      {"yarn", "yarn", {}, "YaRN: a ramp over the dimension index from interpolated to kept frequencies, attention factor",
       {kFactor, kOriginal, kBetaFast, kBetaSlow, kMscale, kMscaleAll, kTruncate, kAttention}, true, false, true, false,
       f_yarn},
      {"llama3", "llama3", {}, "Llama 3.1: long wavelengths / factor, short kept, smoothed in between",
       {kFactor, kOriginal, kLowFreq, kHighFreq}, true, false, false, false, f_llama3},
      {"longrope", "longrope", {}, "LongRoPE (Phi-3): per-pair divisors, short or long by the length, attention factor",
       {kFactor, kOriginal, kAttention, kLong, kShort}, false, true, false, true, f_longrope},
      {"proportional", "proportional", {}, "p-RoPE (Gemma 4): the first ⌊p·d/2⌋ pairs of the whole head rotate, the rest do not",
       {kFactor}, false, true, false, false, f_proportional},
      {"logn", "", {}, "plain RoPE; queries at n > C scaled by log n / log C", {}, false, false, false, false, f_logn},
  };
  return table;
}

bool is_rope_method(const std::string& name) {
  for (const auto& m : rope_methods()) {
    if (name == m.name) return true;
    for (const char* a : m.aliases)
      if (name == a) return true;
  }
  return false;
}

std::string rope_method_names() {
  std::string s;
  for (const auto& m : rope_methods()) {
    s += (s.empty() ? "" : ", ") + std::string(m.name);
    for (const char* a : m.aliases) s += std::string(" (") + a + ")";
  }
  return s;
}

const RopeMethod& rope_method(const std::string& name) {
  for (const auto& m : rope_methods()) {
    if (name == m.name) return m;
    for (const char* a : m.aliases)
      if (name == a) return m;
  }
  throw Error("unknown RoPE method " + text::quoted(name) + " (expected one of: " + rope_method_names() + ")");
}

void set_rope_param(RopeParams& p, const std::string& key, const nlohmann::json& v, const std::string& where) {
  const RopeMethod& m = rope_method(p.type);
  const auto taken = std::find_if(m.params.begin(), m.params.end(), [&](const RopeParam& r) { return key == r.name; });
  if (taken == m.params.end()) {
    std::string names;
    for (const auto& r : m.params) names += (names.empty() ? "" : ", ") + std::string(r.name);
    throw Error(where + ": " + m.name + " takes no parameter " + text::quoted(key) +
                (names.empty() ? " (it takes none)" : " (it takes " + names + ")"));
  }
  auto bad = [&](const std::string& what) { return Error(where + ": " + key + " must be " + what); };
  auto number = [&](const std::string& what) {
    if (!v.is_number() || !std::isfinite(v.get<double>())) throw bad(what);
    return v.get<double>();
  };
  if (key == "factor") {
    p.factor = number(factor_domain(m));
    if (!(m.factor_any_positive ? p.factor > 0 : p.factor >= 1)) throw bad(factor_domain(m));
  } else if (key == "original_max_position_embeddings") {
    const double x = number(kOriginal.domain);
    if (!(x >= 1 && x == std::floor(x) && x < 9.0e15)) throw bad(kOriginal.domain);
    p.original_max_position_embeddings = int64_t(x);
  } else if (key == "truncate") {
    if (!v.is_boolean()) throw bad(kTruncate.domain);
    p.truncate = v.get<bool>();
  } else if (key == "long_factor" || key == "short_factor") {
    if (!v.is_array() || v.empty()) throw bad(kLong.domain);
    std::vector<double> xs;
    for (const auto& x : v) {
      if (!x.is_number() || !(x.get<double>() > 0) || !std::isfinite(x.get<double>())) throw bad(kLong.domain);
      xs.push_back(x.get<double>());
    }
    (key == "long_factor" ? p.long_factor : p.short_factor) = xs;
  } else {
    const double x = number(taken->domain);
    const bool zero_ok = key == "mscale" || key == "mscale_all_dim";
    if (!(zero_ok ? x >= 0 : x > 0)) throw bad(taken->domain);
    if (key == "low_freq_factor") p.low_freq_factor = x;
    else if (key == "high_freq_factor") p.high_freq_factor = x;
    else if (key == "beta_fast") p.beta_fast = x;
    else if (key == "beta_slow") p.beta_slow = x;
    else if (key == "mscale") p.mscale = x;
    else if (key == "mscale_all_dim") p.mscale_all_dim = x;
    else if (key == "attention_factor") p.attention_factor = x;
  }
}

nlohmann::json rope_param_from_text(const std::string& key, const std::string& text, char list_sep) {
  auto value = [](const std::string& s) -> nlohmann::json {
    if (s == "true" || s == "false") return s == "true";
    size_t used = 0;
    double v = NAN;
    try { v = std::stod(s, &used); } catch (...) { used = 0; }
    if (used == s.size() && !s.empty() && std::isfinite(v)) return v;
    return s;
  };
  if (key != "long_factor" && key != "short_factor") return value(text);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& x : text::split(text, list_sep)) list.push_back(value(x));
  return list;
}

void check_rope_params(const RopeParams& p, const RopeGeometry& g, const std::string& where) {
  const RopeMethod& m = rope_method(p.type);
  auto need = [&](bool ok, const std::string& why) {
    if (!ok) throw Error(where + ": " + m.name + " " + why);
  };
  need(std::isfinite(g.theta) && g.theta > 0, "needs θ > 0");
  need(g.rotary_fraction > 0 && g.rotary_fraction <= 1, "needs a rotary fraction in (0, 1]");
  need(rotary_dims(p, g) >= 2 && (std::string(m.name) != "ntk-aware" && std::string(m.name) != "dynamic" ||
                                  rotary_dims(p, g) >= 4),
       "leaves too few rotated dimensions (head_dim " + std::to_string(g.head_dim) + ", rotary fraction " +
           std::to_string(g.rotary_fraction) + ")");
  need(std::isfinite(p.factor) && (m.factor_any_positive ? p.factor > 0 : p.factor >= 1),
       "needs factor " + factor_domain(m));
  need(p.beta_fast > p.beta_slow && p.beta_slow > 0, "needs beta_fast > beta_slow > 0");
  need(p.low_freq_factor > 0 && p.low_freq_factor < p.high_freq_factor, "needs 0 < low_freq_factor < high_freq_factor");
  need(p.original_max_position_embeddings >= 0, "needs original_max_position_embeddings >= 0");
  const bool uses_context = std::string(m.name) == "dynamic" || std::string(m.name) == "logn" ||
                            ((std::string(m.name) == "yarn" || std::string(m.name) == "llama3" ||
                              std::string(m.name) == "longrope") &&
                             p.original_max_position_embeddings == 0);
  need(!uses_context || g.context > 0, "needs the model's context (max_position_embeddings) or original_max_position_embeddings");
  if (std::string(m.name) == "longrope") {
    const size_t pairs = size_t(rotary_dims(p, g) / 2);
    need(p.long_factor.size() == pairs && p.short_factor.size() == pairs,
         "needs long_factor and short_factor of rotary_dim/2 = " + std::to_string(pairs) + " numbers each (given " +
             std::to_string(p.long_factor.size()) + " and " + std::to_string(p.short_factor.size()) + ")");
  }
}

RopeFrequencies rope_frequencies(const RopeParams& p, const RopeGeometry& g, int64_t seq_len) {
  return rope_method(p.type).frequencies(p, g, seq_len);
}

nlohmann::json rope_params_json(const RopeParams& p) {
  const RopeMethod& m = rope_method(p.type);
  nlohmann::json j = {{"rope_type", *m.hf_type ? m.hf_type : m.name}};
  for (const auto& r : m.params) {
    const std::string k = r.name;
    if (k == "factor") j[k] = p.factor;
    else if (k == "original_max_position_embeddings") { if (p.original_max_position_embeddings > 0) j[k] = p.original_max_position_embeddings; }
    else if (k == "low_freq_factor") j[k] = p.low_freq_factor;
    else if (k == "high_freq_factor") j[k] = p.high_freq_factor;
    else if (k == "beta_fast") j[k] = p.beta_fast;
    else if (k == "beta_slow") j[k] = p.beta_slow;
    else if (k == "mscale") { if (p.mscale != 0) j[k] = p.mscale; }
    else if (k == "mscale_all_dim") { if (p.mscale_all_dim != 0) j[k] = p.mscale_all_dim; }
    else if (k == "truncate") j[k] = p.truncate;
    else if (k == "attention_factor") { if (p.attention_factor > 0) j[k] = p.attention_factor; }
    else if (k == "long_factor") j[k] = p.long_factor;
    else if (k == "short_factor") j[k] = p.short_factor;
  }
  return j;
}

RopeSpecText split_rope_spec(const std::string& text, const std::string& where) {
  RopeSpecText out;
  const auto parts = text::split(text, ':');
  out.kind = parts.empty() ? "" : parts[0];
  size_t next = 1;
  if (parts.size() > 1 && parts[1].find('=') == std::string::npos) {
    out.factor = parts[1];
    next = 2;
  }
  for (size_t i = next; i < parts.size(); ++i) {
    const auto eq = parts[i].find('=');
    if (eq == std::string::npos || eq == 0) throw Error(where + ": " + text::quoted(parts[i]) + " is no KEY=VALUE");
    const std::string key = parts[i].substr(0, eq);
    if (key == "factor") throw Error(where + ": give the factor as " + out.kind + ":F, not factor=");
    out.params.emplace_back(key, parts[i].substr(eq + 1));
  }
  return out;
}

RopeParams rope_params_from_spec(const std::string& text, const std::string& where) {
  const RopeSpecText spec = split_rope_spec(text, where);
  if (!is_rope_method(spec.kind))
    throw Error(where + ": " + text::quoted(text) + " names no RoPE method (expected KIND[:FACTOR][:KEY=VALUE...], KIND one of " +
                rope_method_names() + ")");
  RopeParams p;
  p.type = rope_method(spec.kind).name;
  if (!spec.factor.empty()) {
    const nlohmann::json f = rope_param_from_text("factor", spec.factor, '/');
    set_rope_param(p, "factor", f, where);
  }
  for (const auto& [key, value] : spec.params) set_rope_param(p, key, rope_param_from_text(key, value, '/'), where);
  return p;
}

std::string rope_spec(const RopeParams& p) {
  const RopeMethod& m = rope_method(p.type);
  RopeParams defaults;
  defaults.type = p.type;
  defaults.factor = p.factor;
  const nlohmann::json given = rope_params_json(p), unset = rope_params_json(defaults);
  std::string out = m.name;
  if (given.contains("factor")) out += ":" + given["factor"].dump();
  for (const auto& [key, value] : given.items()) {
    if (key == "rope_type" || key == "factor" || (unset.contains(key) && unset[key] == value)) continue;
    std::string text;
    if (value.is_array()) {
      for (const auto& x : value) text += (text.empty() ? "" : "/") + x.dump();
    } else {
      text = value.dump();
    }
    out += ":" + key + "=" + text;
  }
  return out;
}

}  // namespace ropelab::model
