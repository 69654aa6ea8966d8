#include "eval/report_charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>

#include "eval/closed_forms.h"

namespace ropelab::report {

using json = nlohmann::json;

std::optional<double> number_at(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object() || !cur->contains(key)) return std::nullopt;
    cur = &(*cur)[key];
  }
  if (!cur->is_number()) return std::nullopt;
  const double v = cur->get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

namespace {

constexpr int kWidth = 560, kHeight = 320;
constexpr size_t kMaxLossPoints = 2000;  // train-loss points per run; more are thinned evenly
constexpr int kCurvePoints = 60;         // samples of each fitted or closed-form curve

json base_spec(const std::string& title) {
  return {{"$schema", "https://vega.github.io/schema/vega-lite/v6.json"},
          {"title", title},
          {"width", kWidth},
          {"height", kHeight},
          {"config", {{"legend", {{"labelLimit", 320}}}}}};
}

json axis(const std::string& field, const std::string& title, const std::string& scale = "") {
  json a = {{"field", field}, {"type", "quantitative"}, {"title", title}};
  // Log axes end at the data (not at the next power of ten); linear ones need not include 0.
  if (scale == "log") a["scale"] = {{"type", scale}, {"nice", false}};
  else if (!scale.empty()) a["scale"] = {{"type", scale}};
  else a["scale"] = {{"zero", false}};
  return a;
}

json nominal(const std::string& field, const std::string& title) {
  return {{"field", field}, {"type", "nominal"}, {"title", title}};
}

std::string fmt_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// n points from lo to hi, evenly spaced in log.
std::vector<double> log_space(double lo, double hi, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(std::exp(std::log(lo) + (std::log(hi) - std::log(lo)) * i / (n - 1)));
  return out;
}

// Every series (runs, then γ-record series) in one order, so that a run has the
// same colour in every chart; each chart's legend lists only the series it draws.
json series_color(const Inputs& in, const json& rows, const std::string& title) {
  std::vector<std::string> domain;
  auto add = [&](const std::string& s) {
    if (std::find(domain.begin(), domain.end(), s) == domain.end()) domain.push_back(s);
  };
  for (const auto& r : in.runs) add(r.label);
  for (const auto& g : in.gamma) add(g.series);
  std::vector<std::string> shown;
  for (const auto& s : domain)
    if (std::any_of(rows.begin(), rows.end(), [&](const json& r) { return r.value("series", "") == s; }))
      shown.push_back(s);
  return {{"field", "series"}, {"type", "nominal"}, {"title", title},
          {"scale", {{"domain", domain}}}, {"legend", {{"values", shown}}}};
}

json step_or_null(const GammaRecord& g) { return g.step ? json(*g.step) : json(); }

}  // namespace

std::optional<Chart> loss_curves_chart(const Inputs& in) {
  json train = json::array(), val = json::array();
  for (const auto& run : in.runs) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& m : run.metrics) {
      const auto step = number_at(m, {"step"}), loss = number_at(m, {"loss"});
      if (step && loss) pts.emplace_back(*step, *loss);
      if (const auto v = number_at(m, {"val_loss"}); step && v)
        val.push_back({{"series", run.label}, {"step", *step}, {"loss", *v}, {"curve", "val_loss"}});
    }
    const size_t stride = std::max<size_t>(1, (pts.size() + kMaxLossPoints - 1) / kMaxLossPoints);
    for (size_t i = 0; i < pts.size(); ++i)
      if (i % stride == 0 || i + 1 == pts.size())
        train.push_back({{"series", run.label}, {"step", pts[i].first}, {"loss", pts[i].second},
                         {"curve", "train loss"}});
  }
  if (train.empty() && val.empty()) return std::nullopt;
  const json enc = {{"x", axis("step", "step")},
                    {"y", axis("loss", "loss (cross-entropy)")},
                    {"color", series_color(in, train, "run")},
                    {"strokeDash", nominal("curve", "curve")},
                    {"tooltip", {nominal("series", "run"), axis("step", "step"), axis("loss", "loss")}}};
  json spec = base_spec("Loss curves");
  spec["layer"] = json::array();
  if (!train.empty()) spec["layer"].push_back({{"data", {{"values", train}}}, {"mark", "line"}, {"encoding", enc}});
  if (!val.empty())
    spec["layer"].push_back(
        {{"data", {{"values", val}}}, {"mark", {{"type", "line"}, {"point", true}}}, {"encoding", enc}});
  return Chart{"loss-curves", "Loss curves",
               "Train loss (every logged step, thinned evenly beyond 2000 points a run) and val_loss "
               "vs step, one colour per run; from RUN_DIR/metrics.jsonl.",
               spec};
}

std::optional<Chart> gamma_fit_chart(const Inputs& in) {
  json points = json::array(), fits = json::array();
  for (const auto& g : final_records(in)) {
    const json& r = g.record;
    if (!r["measurement"].contains("distances") || !r.contains("ropelab") || !r["ropelab"].contains("A")) continue;
    const json &ds = r["measurement"]["distances"], &As = r["ropelab"]["A"];
    if (!ds.is_array() || !As.is_array() || ds.size() != As.size() || ds.empty()) continue;
    const std::string& label = g.series;
    const double min_d = number_at(r, {"ropelab", "fit_min_d"}).value_or(0);
    double lo = INFINITY, hi = 0;
    for (size_t i = 0; i < ds.size(); ++i) {
      if (!ds[i].is_number() || !As[i].is_number()) continue;
      const double d = ds[i].get<double>(), A = As[i].get<double>();
      if (!(d > 0 && A > 0)) continue;
      lo = std::min(lo, d), hi = std::max(hi, d);
      points.push_back({{"series", label}, {"step", step_or_null(g)}, {"d", d}, {"A", A},
                        {"point", d >= min_d ? "fitted" : "not fitted (d < " + fmt_g(min_d) + ")"}});
    }
    if (!(hi > lo)) continue;
    const auto gamma = number_at(r, {"measurement", "gamma"});
    const auto log_A = number_at(r, {"measurement", "fit", "log_A"});
    const auto b = number_at(r, {"ropelab", "exp_fit", "b"});
    const auto lambda = number_at(r, {"ropelab", "exp_fit", "lambda"});  // null: no decay
    for (double d : log_space(lo, hi, kCurvePoints)) {
      if (gamma && log_A)
        fits.push_back({{"series", label}, {"d", d}, {"A", std::exp(*log_A - *gamma * std::log(d))},
                        {"fit", "power law a·d^−γ"}});
      if (b) {
        const double A = std::exp(*b - (lambda ? d / *lambda : 0.0));
        if (std::isfinite(A) && A > 0)
          fits.push_back({{"series", label}, {"d", d}, {"A", A}, {"fit", "exponential e^(b − d/λ)"}});
      }
    }
  }
  if (points.empty()) return std::nullopt;
  const json x = axis("d", "distance d (tokens)", "log"), y = axis("A", "A(d): attention on the key d back", "log");
  json spec = base_spec("γ fit: A(d) on log–log axes");
  spec["layer"] = {{{"data", {{"values", points}}},
                    {"mark", {{"type", "point"}, {"filled", true}, {"size", 50}}},
                    {"encoding",
                     {{"x", x}, {"y", y}, {"color", series_color(in, points, "run / model")},
                      {"shape", nominal("point", "point")},
                      {"tooltip", {nominal("series", "run / model"), axis("step", "checkpoint step"), axis("d", "d"),
                                   axis("A", "A(d)")}}}}}};
  if (!fits.empty())
    spec["layer"].push_back({{"data", {{"values", fits}}},
                             {"mark", {{"type", "line"}, {"clip", true}}},
                             {"encoding", {{"x", x}, {"y", y}, {"color", series_color(in, points, "run / model")},
                                           {"strokeDash", nominal("fit", "fit")}}}});
  return Chart{"gamma-fit", "γ fit (newest checkpoint of each run, and each fit-gamma record)",
               "Points: A(d) (ropelab.A at measurement.distances); their shape tells the fitted distances "
               "(d ≥ ropelab.fit_min_d) from the others. Lines: the power law exp(measurement.fit.log_A)·d^−γ "
               "and the exponential exp(b − d/λ) (ropelab.exp_fit).",
               spec};
}

std::optional<Chart> gamma_flow_chart(const Inputs& in) {
  json flow = json::array(), rules = json::array();
  std::set<std::tuple<std::string, std::string, double>> rule_rows;  // (series, reference, γ), once each
  for (const auto& g : in.gamma) {
    if (!g.step) continue;
    const auto gamma = number_at(g.record, {"measurement", "gamma"});
    json row = {{"series", g.series}, {"step", *g.step}, {"gamma", *gamma}};
    const auto lo = number_at(g.record, {"measurement", "gamma_ci95_lo"});
    const auto hi = number_at(g.record, {"measurement", "gamma_ci95_hi"});
    if (lo && hi) row["lo"] = *lo, row["hi"] = *hi;
    flow.push_back(row);
    const std::pair<const char*, std::optional<double>> rs[] = {
        {"γ_Padé", number_at(g.record, {"predictions", "gamma_pade"})},
        {"uniform-attention baseline", number_at(g.record, {"ropelab", "uniform_baseline_gamma"})}};
    for (const auto& [name, v] : rs)
      if (v) rule_rows.emplace(g.series, name, *v);
  }
  if (flow.empty()) return std::nullopt;
  for (const auto& [series, name, v] : rule_rows) rules.push_back({{"series", series}, {"rule", name}, {"value", v}});
  const json x = axis("step", "step (symlog)", "symlog");
  json color = series_color(in, flow, "run");
  color["legend"]["symbolOpacity"] = 1;  // not the pale band's opacity
  json spec = base_spec("γ-flow: γ over training");
  spec["layer"] = {
      {{"data", {{"values", flow}}},
       {"transform", {{{"filter", "isValid(datum.lo) && isValid(datum.hi)"}}}},
       {"mark", {{"type", "area"}, {"opacity", 0.2}}},
       {"encoding", {{"x", x}, {"y", axis("lo", "γ")}, {"y2", {{"field", "hi"}}}, {"color", color}}}},
      {{"data", {{"values", flow}}},
       {"mark", {{"type", "line"}, {"point", true}}},
       {"encoding",
        {{"x", x}, {"y", axis("gamma", "γ")}, {"color", color},
         {"tooltip", {nominal("series", "run"), axis("step", "step"), axis("gamma", "γ"), axis("lo", "CI95 lo"),
                      axis("hi", "CI95 hi")}}}}}};
  if (!rules.empty())
    spec["layer"].push_back({{"data", {{"values", rules}}},
                             {"mark", {{"type", "rule"}, {"strokeWidth", 1.5}}},
                             {"encoding", {{"y", axis("value", "γ")}, {"color", color},
                                           {"strokeDash", nominal("rule", "reference")},
                                           {"tooltip", {nominal("rule", "reference"), axis("value", "γ")}}}}});
  return Chart{"gamma-flow", "γ-flow: γ vs training step",
               "γ (measurement.gamma) and its CI95 band (gamma_ci95_lo/hi) for every checkpoint record "
               "with a step, one colour per run; rules at predictions.gamma_pade and "
               "ropelab.uniform_baseline_gamma (what uniform attention gives under this protocol).",
               spec};
}

std::optional<Chart> gamma_vs_theta_chart(const Inputs& in) {
  json points = json::array(), curves = json::array();
  std::map<double, bool> T_evals;
  double th_lo = INFINITY, th_hi = 0;
  for (const auto& g : final_records(in)) {
    const auto theta = number_at(g.record, {"arch", "rope_theta"});
    const auto T = number_at(g.record, {"measurement", "T_eval"});
    if (!theta || !(*theta > 0)) continue;
    json row = {{"series", g.series}, {"step", step_or_null(g)}, {"theta", *theta},
                {"gamma", *number_at(g.record, {"measurement", "gamma"})}};
    const auto lo = number_at(g.record, {"measurement", "gamma_ci95_lo"});
    const auto hi = number_at(g.record, {"measurement", "gamma_ci95_hi"});
    if (lo && hi) row["lo"] = *lo, row["hi"] = *hi;
    if (T && *T > 0) row["T_eval"] = *T, T_evals[*T] = true;
    points.push_back(row);
    th_lo = std::min(th_lo, *theta), th_hi = std::max(th_hi, *theta);
  }
  if (points.empty()) return std::nullopt;
  for (const auto& [T, _] : T_evals)
    for (double theta : log_space(th_lo / 4, th_hi * 4, kCurvePoints))
      curves.push_back({{"theta", theta}, {"gamma", closed_forms::gamma_pade(theta, T)},
                        {"curve", "γ_Padé(θ, T=" + fmt_g(T) + ")"}});
  const json x = axis("theta", "RoPE base θ (arch.rope_theta)", "log");
  json spec = base_spec("Measured γ vs θ");
  spec["layer"] = json::array();
  if (!curves.empty())
    spec["layer"].push_back({{"data", {{"values", curves}}},
                             {"mark", {{"type", "line"}, {"color", "#777"}}},
                             {"encoding", {{"x", x}, {"y", axis("gamma", "γ")},
                                           {"strokeDash", nominal("curve", "prediction")}}}});
  spec["layer"].push_back({{"data", {{"values", points}}},
                           {"transform", {{{"filter", "isValid(datum.lo) && isValid(datum.hi)"}}}},
                           {"mark", "rule"},
                           {"encoding", {{"x", x}, {"y", axis("lo", "γ")}, {"y2", {{"field", "hi"}}},
                                         {"color", series_color(in, points, "run / model")}}}});
  spec["layer"].push_back(
      {{"data", {{"values", points}}},
       {"mark", {{"type", "point"}, {"filled", true}, {"size", 70}}},
       {"encoding", {{"x", x}, {"y", axis("gamma", "γ")}, {"color", series_color(in, points, "run / model")},
                     {"tooltip", {nominal("series", "run / model"), axis("step", "checkpoint step"),
                                  axis("theta", "θ"), axis("gamma", "γ"),
                                  axis("lo", "CI95 lo"), axis("hi", "CI95 hi"), axis("T_eval", "T_eval")}}}}});
  return Chart{"gamma-vs-theta", "Measured γ vs θ",
               "Measured γ with CI95 bars at arch.rope_theta, for each run's final checkpoint and each "
               "fit-gamma record with a θ; the lines are γ_Padé(θ, T) = (2θ − T√2)/(2θ + T√2) for each "
               "T_eval (measurement.T_eval) present, computed by ropelab over the θ range shown.",
               spec};
}

const std::vector<ChartBuilder>& chart_builders() {
  // Page order. Add later charts (NIAH heatmaps, perplexity vs length, KV quality vs
  // budget with D_f markers) here, one function each.
  static const std::vector<ChartBuilder> builders = {loss_curves_chart, gamma_fit_chart, gamma_flow_chart,
                                                     gamma_vs_theta_chart};
  return builders;
}

std::vector<Chart> build_charts(const Inputs& in) {
  std::vector<Chart> charts;
  for (ChartBuilder b : chart_builders())
    if (auto c = b(in)) charts.push_back(std::move(*c));
  return charts;
}

}  // namespace ropelab::report
