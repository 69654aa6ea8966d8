#include "theory/gamma_record.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "theory/closed_forms.h"

namespace ropelab {
namespace {

const char* kArchFields[] = {"d_model",    "n_heads",    "n_layers",   "d_head",
                             "n_kv_heads", "n_params_M", "rope_theta", "T_train"};

// JSON has no inf/NaN; an unknown or unbounded value is null.
nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nullptr; }

std::optional<double> positive_field(const nlohmann::json& arch, const char* key) {
  if (!arch.contains(key) || arch[key].is_null()) return std::nullopt;
  const auto& v = arch[key];
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
    throw Error(std::string("arch.") + key + " must be a number > 0 or null, got " + v.dump());
  return v.get<double>();
}

// The schema's arch fields are always present (null when unknown); extra fields
// the caller knows (e.g. rotary_fraction) are kept.
nlohmann::json complete_arch(const nlohmann::json& arch_in) {
  if (!arch_in.is_null() && !arch_in.is_object())
    throw Error("arch must be a JSON object or null, got " + arch_in.dump());
  nlohmann::json arch = arch_in.is_null() ? nlohmann::json::object() : arch_in;
  for (const char* key : kArchFields)
    if (!arch.contains(key)) arch[key] = nullptr;
  return arch;
}

nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
nlohmann::json string_or_null(const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); }

}  // namespace

nlohmann::json make_gamma_record(const nlohmann::json& arch_in, const fit::DecayCurve& curve,
                                 const fit::GammaFit& fit, const MeasurementInfo& info) {
  nlohmann::json arch = complete_arch(arch_in);
  const auto theta = positive_field(arch, "rope_theta");
  const auto params_M = positive_field(arch, "n_params_M");

  if (fit.fitted_distances.empty()) throw Error("gamma record: the fit has no fitted distances");
  const double T_eval = info.T_eval.value_or(
      *std::max_element(fit.fitted_distances.begin(), fit.fitted_distances.end()));
  if (!(std::isfinite(T_eval) && T_eval > 0))
    throw Error("gamma record: T_eval must be > 0, got " + std::to_string(T_eval));
  std::string rule = info.T_eval_rule;
  if (rule.empty()) rule = info.T_eval ? "given" : "largest_fitted_distance";

  nlohmann::json predictions = {{"gamma_pade", nullptr}, {"gamma_random_pred", nullptr},
                                {"relative_error", nullptr}};
  if (theta) {
    const double gp = closed_forms::gamma_pade(*theta, T_eval);
    predictions["gamma_pade"] = gp;
    if (params_M) predictions["gamma_random_pred"] = closed_forms::gamma_random_pred(gp, *params_M);
    if (gp != 0) predictions["relative_error"] = std::fabs(fit.gamma - gp) / std::fabs(gp);
  }

  const auto if_intrinsic = [&](double v) { return fit.has_intrinsic ? nlohmann::json(v) : nlohmann::json(); };
  nlohmann::json measurement = {
      {"status", "ok"},
      {"protocol", string_or_null(info.protocol)},
      {"gamma", fit.gamma},
      {"gamma_ci95_lo", fit.ci95_lo},
      {"gamma_ci95_hi", fit.ci95_hi},
      {"gamma_intrinsic", if_intrinsic(fit.gamma_intrinsic)},
      {"gamma_intrinsic_ci95_lo", if_intrinsic(fit.intrinsic_ci95_lo)},
      {"gamma_intrinsic_ci95_hi", if_intrinsic(fit.intrinsic_ci95_hi)},
      {"uniform_baseline_gamma", optional_json(info.uniform_baseline_gamma)},
      {"method", "power_law_ols_loglog"},
      {"fit",
       {{"log_A", fit.log_A},
        {"R2", fit.R2},
        {"n_points", fit.n_points},
        {"delta_R2_power_minus_exp", fit.delta_R2_power_minus_exp},
        {"intrinsic", fit.has_intrinsic ? nlohmann::json{{"log_A", fit.intrinsic_log_A}, {"R2", fit.intrinsic_R2}}
                                        : nlohmann::json()}}},
      {"T_eval", T_eval},
      {"T_eval_rule", rule},
      {"corpus", info.corpus.empty() ? nlohmann::json() : nlohmann::json(info.corpus)},
      {"n_prompts_per_distance",
       info.n_prompts_per_distance > 0 ? nlohmann::json(info.n_prompts_per_distance) : nlohmann::json()},
      {"seeds", curve.seeds.empty() ? nlohmann::json() : nlohmann::json(curve.seeds)},
      {"distances", curve.distances},
      {"prompt_lengths", curve.prompt_lengths.empty() ? nlohmann::json() : nlohmann::json(curve.prompt_lengths)}};

  nlohmann::json ropelab = {
      {"A", curve.A},
      {"fit_min_d", fit.fit_min_d},
      {"exp_fit", {{"b", fit.exp_b}, {"lambda", finite_or_null(fit.exp_lambda)}, {"R2", fit.R2_exp}}},
      {"per_seed_gamma", fit.per_seed_gamma},
      {"per_seed_sd", fit.per_seed_gamma.size() >= 2 ? nlohmann::json(fit.per_seed_sd) : nlohmann::json()},
      {"ci_method", fit.ci_method},
      {"n_resamples", fit.n_resamples},
      {"bootstrap_seed", fit.bootstrap_seed},
      {"source", info.source}};

  return {{"model_id", info.model_id},
          {"arch", arch},
          {"measurement", measurement},
          {"predictions", predictions},
          {"ropelab", ropelab}};
}

nlohmann::json make_insufficient_gamma_record(const nlohmann::json& arch_in, const fit::DecayCurve& curve,
                                              const fit::InsufficientPoints& why, const MeasurementInfo& info) {
  nlohmann::json measurement = {
      {"status", "insufficient_points"},
      {"reason", why.what()},
      {"protocol", string_or_null(info.protocol)},
      {"gamma", nullptr},
      {"gamma_ci95_lo", nullptr},
      {"gamma_ci95_hi", nullptr},
      {"gamma_intrinsic", nullptr},
      {"uniform_baseline_gamma", optional_json(info.uniform_baseline_gamma)},
      {"fit", {{"n_points", why.n_points}, {"min_points", why.min_points}}},
      {"T_eval", optional_json(info.T_eval)},
      {"corpus", string_or_null(info.corpus)},
      {"n_prompts_per_distance",
       info.n_prompts_per_distance > 0 ? nlohmann::json(info.n_prompts_per_distance) : nlohmann::json()},
      {"seeds", curve.seeds.empty() ? nlohmann::json() : nlohmann::json(curve.seeds)},
      {"distances", curve.distances},
      {"prompt_lengths", curve.prompt_lengths.empty() ? nlohmann::json() : nlohmann::json(curve.prompt_lengths)}};
  return {{"model_id", info.model_id},
          {"arch", complete_arch(arch_in)},
          {"measurement", measurement},
          {"predictions", {{"gamma_pade", nullptr}, {"gamma_random_pred", nullptr}, {"relative_error", nullptr}}},
          {"ropelab", {{"A", curve.A}, {"source", info.source}}}};
}

namespace {

std::string fixed(const nlohmann::json& v, const char* fmt = "%.4f") {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v.get<double>());
  return buf;
}

const nlohmann::json& at_path(const nlohmann::json& j, std::initializer_list<const char*> path) {
  static const nlohmann::json missing;
  const nlohmann::json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object() || !cur->contains(key)) return missing;
    cur = &(*cur)[key];
  }
  return *cur;
}

// Terminal columns of a UTF-8 string (γ, ², − are one column each, several bytes).
size_t width(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
}

}  // namespace

namespace {

// Whether two checkpoint paths name the same file (as written, or once resolved).
bool same_file(const std::string& a, const std::string& b) {
  if (a == b) return true;
  std::error_code ea, eb;
  const auto ca = std::filesystem::weakly_canonical(a, ea), cb = std::filesystem::weakly_canonical(b, eb);
  return !ea && !eb && ca == cb;
}

}  // namespace

std::optional<nlohmann::json> find_gamma_record(const std::vector<nlohmann::json>& records,
                                                const std::string& model_id, const std::string& checkpoint,
                                                std::optional<int64_t> step, const std::string& protocol) {
  // 0: same checkpoint file, 1: same model and step, 2: same model, no step.
  std::optional<nlohmann::json> best[3];
  for (const auto& r : records) {
    if (!r.is_object() || !r.contains("measurement") || !r["measurement"].is_object() ||
        !r["measurement"].contains("gamma") || !r["measurement"]["gamma"].is_number())
      continue;
    // A record without a protocol predates them and measured as taf does.
    const auto& proto = r["measurement"].value("protocol", nlohmann::json());
    if (!protocol.empty() && (proto.is_string() ? proto.get<std::string>() : std::string("taf")) != protocol) continue;
    const bool same_model = r.contains("model_id") && r["model_id"] == model_id;
    const bool has_step = r.contains("step") && r["step"].is_number_integer();
    if (r.contains("checkpoint") && r["checkpoint"].is_string() && same_file(r["checkpoint"], checkpoint))
      best[0] = r;
    else if (same_model && has_step && step && r["step"].get<int64_t>() == *step)
      best[1] = r;
    else if (same_model && (!r.contains("step") || r["step"].is_null()))
      best[2] = r;
  }
  for (const auto& b : best)
    if (b) return b;
  return std::nullopt;
}

std::string gamma_table(const std::vector<nlohmann::json>& records) {
  std::vector<std::vector<std::string>> rows = {
      {"model/step", "protocol", "γ", "CI95", "γ intrinsic", "uniform", "R²", "ΔR²(pow−exp)", "n", "γ_Padé", "rel.err"}};
  for (const auto& r : records) {
    std::string name = r.value("model_id", std::string("?"));
    if (r.contains("step") && !r["step"].is_null())
      name += "@" + (r["step"].is_string() ? r["step"].get<std::string>() : r["step"].dump());
    const auto& lo = at_path(r, {"measurement", "gamma_ci95_lo"});
    const auto& hi = at_path(r, {"measurement", "gamma_ci95_hi"});
    const auto& n = at_path(r, {"measurement", "fit", "n_points"});
    const auto& rel = at_path(r, {"predictions", "relative_error"});
    const auto& protocol = at_path(r, {"measurement", "protocol"});
    const auto& status = at_path(r, {"measurement", "status"});
    const std::string gamma = status == "insufficient_points" ? "too few points" : fixed(at_path(r, {"measurement", "gamma"}));
    rows.push_back({name, protocol.is_string() ? protocol.get<std::string>() : "-", gamma,
                    lo.is_number() && hi.is_number() ? "[" + fixed(lo) + ", " + fixed(hi) + "]" : "-",
                    fixed(at_path(r, {"measurement", "gamma_intrinsic"})),
                    fixed(at_path(r, {"measurement", "uniform_baseline_gamma"})),
                    fixed(at_path(r, {"measurement", "fit", "R2"})),
                    fixed(at_path(r, {"measurement", "fit", "delta_R2_power_minus_exp"}), "%+.4f"),
                    n.is_number() ? n.dump() : "-", fixed(at_path(r, {"predictions", "gamma_pade"})),
                    rel.is_number() ? fixed(rel.get<double>() * 100, "%.1f") + "%" : "-"});
  }
  std::vector<size_t> w(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) w[c] = std::max(w[c], width(row[c]));
  std::string out;
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(w[c] - width(row[c]), ' ');
      out += c == 0 ? row[c] + pad : "  " + pad + row[c];  // names left, numbers right
    }
    out += "\n";
  }
  return out;
}

}  // namespace ropelab
