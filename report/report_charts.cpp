#include "report/report_charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "common/run_dir.h"
#include "theory/closed_forms.h"

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

std::string str_at(const json& r, const char* key, const std::string& otherwise) {
  return r.contains(key) && r[key].is_string() ? r[key].get<std::string>() : otherwise;
}

std::string num_key(const std::optional<double>& v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v.value_or(NAN));
  return buf;
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
  for (const auto& g : in.gamma) add(series_name(in, g));
  std::vector<std::string> shown;
  for (const auto& s : domain)
    if (std::any_of(rows.begin(), rows.end(), [&](const json& r) { return r.value("series", "") == s; }))
      shown.push_back(s);
  return {{"field", "series"}, {"type", "nominal"}, {"title", title},
          {"scale", {{"domain", domain}}}, {"legend", {{"values", shown}}}};
}

json step_or_null(const GammaRecord& g) { return g.step ? json(*g.step) : json(); }

// ---- helpers of the NIAH, perplexity and KV charts

bool several_models(const std::vector<ResultRecord>& recs) {
  return std::any_of(recs.begin(), recs.end(), [&](const ResultRecord& r) { return r.model != recs[0].model; });
}

// A line's name: the method or policy, with the model when the records have several.
std::string line_label(const std::string& name, const ResultRecord& r, bool several) {
  return several ? name + " · " + r.model : name;
}

// CI95 [lo, hi] at record[key] into row[lo_name], row[hi_name], when present.
void add_ci(json& row, const json& record, const char* key, const char* lo_name, const char* hi_name) {
  if (!record.contains(key) || !record[key].is_array() || record[key].size() != 2) return;
  const json& ci = record[key];
  if (ci[0].is_number() && ci[1].is_number()) row[lo_name] = ci[0], row[hi_name] = ci[1];
}

// T_train: the record's arch block (every evaluation record carries one).
std::optional<double> t_train(const Inputs&, const ResultRecord& r) { return number_at(r.record, {"arch", "T_train"}); }

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
    const std::string label = series_name(in, g);
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
    const std::string series = series_name(in, g);
    json row = {{"series", series}, {"step", *g.step}, {"gamma", *gamma}};
    const auto lo = number_at(g.record, {"measurement", "gamma_ci95_lo"});
    const auto hi = number_at(g.record, {"measurement", "gamma_ci95_hi"});
    if (lo && hi) row["lo"] = *lo, row["hi"] = *hi;
    flow.push_back(row);
    const std::pair<const char*, std::optional<double>> rs[] = {
        {"γ_Padé", number_at(g.record, {"predictions", "gamma_pade"})},
        {"uniform-attention baseline", number_at(g.record, {"measurement", "uniform_baseline_gamma"})
                                           ? number_at(g.record, {"measurement", "uniform_baseline_gamma"})
                                           : number_at(g.record, {"ropelab", "uniform_baseline_gamma"})}};
    for (const auto& [name, v] : rs)
      if (v) rule_rows.emplace(series, name, *v);
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
  json points = json::array(), curves = json::array(), means = json::array();
  std::map<double, bool> T_evals;
  double th_lo = INFINITY, th_hi = 0;
  for (const auto& g : final_records(in)) {
    const auto theta = number_at(g.record, {"arch", "rope_theta"});
    const auto T = number_at(g.record, {"measurement", "T_eval"});
    if (!theta || !(*theta > 0)) continue;
    json row = {{"series", series_name(in, g)}, {"step", step_or_null(g)}, {"theta", *theta},
                {"protocol", g.protocol.empty() ? "?" : g.protocol},
                {"gamma", *number_at(g.record, {"measurement", "gamma"})}};
    const auto lo = number_at(g.record, {"measurement", "gamma_ci95_lo"});
    const auto hi = number_at(g.record, {"measurement", "gamma_ci95_hi"});
    if (lo && hi) row["lo"] = *lo, row["hi"] = *hi;
    if (T && *T > 0) row["T_eval"] = *T, T_evals[*T] = true;
    points.push_back(row);
    th_lo = std::min(th_lo, *theta), th_hi = std::max(th_hi, *theta);
  }
  if (points.empty()) return std::nullopt;
  // The mean over trainings and its t-interval (3 or more trainings), per θ group and protocol.
  for (const auto& b : in.between_trainings) {
    if (b["quantity"] != "gamma" || !b["mean"].is_number()) continue;
    json row = {{"theta", b["theta"]}, {"gamma", b["mean"]}, {"n", b["n_trainings"]}, {"group", b["group"]},
                {"protocol", b["protocol"].is_string() ? b["protocol"].get<std::string>() : "?"}};
    if (b["ci95_lo"].is_number()) row["lo"] = b["ci95_lo"], row["hi"] = b["ci95_hi"];
    means.push_back(row);
  }
  for (const auto& [T, _] : T_evals)
    for (double theta : log_space(th_lo / 4, th_hi * 4, kCurvePoints))
      curves.push_back({{"theta", theta}, {"gamma", closed_forms::gamma_pade(theta, T)},
                        {"curve", "γ_Padé(θ, T=" + fmt_g(T) + ")"}});
  const json x = axis("theta", "RoPE base θ (arch.rope_theta)", "log");
  const json by_protocol = nominal("protocol", "protocol");
  json spec = base_spec("Measured γ vs θ");
  spec["layer"] = json::array();
  if (!curves.empty())
    spec["layer"].push_back({{"data", {{"values", curves}}},
                             {"mark", {{"type", "line"}, {"color", "#777"}}},
                             {"encoding", {{"x", x}, {"y", axis("gamma", "γ")},
                                           {"strokeDash", nominal("curve", "prediction")}}}});
  // Each training's final γ: a small point, its prompt-level CI95 a thin bar.
  spec["layer"].push_back({{"data", {{"values", points}}},
                           {"transform", {{{"filter", "isValid(datum.lo) && isValid(datum.hi)"}}}},
                           {"mark", {{"type", "rule"}, {"opacity", 0.35}}},
                           {"encoding", {{"x", x}, {"y", axis("lo", "γ")}, {"y2", {{"field", "hi"}}},
                                         {"color", by_protocol}}}});
  spec["layer"].push_back(
      {{"data", {{"values", points}}},
       {"mark", {{"type", "point"}, {"filled", true}, {"size", 40}, {"opacity", 0.7}}},
       {"encoding", {{"x", x}, {"y", axis("gamma", "γ")}, {"color", by_protocol},
                     {"tooltip", {nominal("series", "training (run)"), nominal("protocol", "protocol"),
                                  axis("step", "checkpoint step"), axis("theta", "θ"), axis("gamma", "γ"),
                                  axis("lo", "CI95 lo (prompts)"), axis("hi", "CI95 hi (prompts)"),
                                  axis("T_eval", "T_eval")}}}}});
  if (!means.empty()) {
    // The mean over trainings: a large open diamond; its 95% t-interval a thick bar.
    spec["layer"].push_back({{"data", {{"values", means}}},
                             {"transform", {{{"filter", "isValid(datum.lo) && isValid(datum.hi)"}}}},
                             {"mark", {{"type", "rule"}, {"strokeWidth", 4}, {"opacity", 0.6}}},
                             {"encoding", {{"x", x}, {"y", axis("lo", "γ")}, {"y2", {{"field", "hi"}}},
                                           {"color", by_protocol}}}});
    spec["layer"].push_back(
        {{"data", {{"values", means}}},
         {"mark", {{"type", "point"}, {"shape", "diamond"}, {"filled", false}, {"size", 220}, {"strokeWidth", 2}}},
         {"encoding", {{"x", x}, {"y", axis("gamma", "γ")}, {"color", by_protocol},
                       {"tooltip", {nominal("group", "trainings"), nominal("protocol", "protocol"), axis("n", "trainings"),
                                    axis("gamma", "mean γ"), axis("lo", "95% t-interval lo"),
                                    axis("hi", "95% t-interval hi")}}}}});
  }
  return Chart{"gamma-vs-theta", "Measured γ vs θ",
               "Small points: each training's final-checkpoint γ (raw measurement.gamma) at arch.rope_theta, coloured "
               "by protocol, with its prompt-level CI95 as a thin bar. Diamonds: the mean over the trainings of a θ "
               "(same recipe, other seeds), with the 95% t-interval over trainings as a thick bar (3 or more "
               "trainings; between_trainings.jsonl). Lines: γ_Padé(θ, T) = (2θ − T√2)/(2θ + T√2) for each T_eval "
               "(measurement.T_eval) present.",
               spec};
}

// Data: "niah" records (ropelab eval niah), the newest step per model, method, length and depth.
std::optional<Chart> niah_heatmap_chart(const Inputs& in) {
  const auto recs = newest_per(in.niah, [](const ResultRecord& r) {
    return r.model + "|" + str_at(r.record, "method") + "|" + num_key(number_at(r.record, {"length"})) + "|" +
           num_key(number_at(r.record, {"depth"}));
  });
  if (recs.empty()) return std::nullopt;
  json cells = json::array();
  std::set<double> chance;
  for (const auto* r : recs) {
    const json& j = r->record;
    json row = {{"model", r->model}, {"method", str_at(j, "method")}, {"length", *number_at(j, {"length"})},
                {"depth", *number_at(j, {"depth"})}, {"rank_accuracy", *number_at(j, {"rank_accuracy"})},
                {"step", r->step ? json(*r->step) : json()}};
    if (const auto e = number_at(j, {"exact_accuracy"})) row["exact_accuracy"] = *e;
    if (const auto t = number_at(j, {"trials"})) row["trials"] = *t;
    add_ci(row, j, "rank_ci95", "rank_lo", "rank_hi");
    add_ci(row, j, "exact_ci95", "exact_lo", "exact_hi");
    if (const auto c = number_at(j, {"rank_chance"})) chance.insert(*c);
    cells.push_back(row);
  }
  std::string chance_text;
  for (double c : chance) chance_text += (chance_text.empty() ? "" : " / ") + fmt_g(c);
  // One model: methods wrap four to a row (eight methods no longer run off the page);
  // several: a row per model, a column per method.
  const bool by_model = several_models(in.niah);
  json facet = by_model ? json{{"column", nominal("method", "method")}, {"row", nominal("model", "model")}}
                        : nominal("method", "method");
  const json tooltip = {nominal("method", "method"), nominal("model", "model"), axis("length", "length"),
                        axis("depth", "depth"), axis("rank_accuracy", "rank accuracy"),
                        axis("rank_lo", "rank CI95 lo"), axis("rank_hi", "rank CI95 hi"),
                        axis("exact_accuracy", "exact accuracy"), axis("exact_lo", "exact CI95 lo"),
                        axis("exact_hi", "exact CI95 hi"), axis("trials", "trials"), axis("step", "step")};
  json spec = base_spec("NIAH: rank accuracy by length and depth");
  spec.erase("width"), spec.erase("height");
  spec["data"] = {{"values", cells}};
  spec["facet"] = facet;
  if (!by_model) spec["columns"] = 4;
  spec["spec"] = {{"width", 200}, {"height", 150}, {"mark", "rect"},
                  {"encoding", {{"x", {{"field", "length"}, {"type", "ordinal"}, {"title", "context length"}}},
                                {"y", {{"field", "depth"}, {"type", "ordinal"}, {"title", "needle depth"}}},
                                {"color", {{"field", "rank_accuracy"}, {"type", "quantitative"},
                                           {"title", "rank accuracy"},
                                           {"scale", {{"domain", {0, 1}}, {"scheme", "viridis"}}}}},
                                {"tooltip", tooltip}}}};
  return Chart{"niah-heatmap", "NIAH: rank accuracy by length × depth",
               "rank_accuracy of \"niah\" records (ropelab eval niah), colour 0 to 1, one panel per method" +
                   std::string(by_model ? " and model" : "") + "; chance level (rank_chance) = " +
                   (chance_text.empty() ? "not in the records" : chance_text) +
                   ". The tooltip gives exact_accuracy and both CI95s (rank_ci95, exact_ci95). Newest step per cell.",
               spec};
}

// Data: "perplexity" records (ropelab eval niah), the newest step per model, method and length;
// the rule at T_train comes from the record or its run's config.json (model.T_train), else is not drawn.
std::optional<Chart> perplexity_vs_length_chart(const Inputs& in) {
  const auto recs = newest_per(in.perplexity, [](const ResultRecord& r) {
    return r.model + "|" + str_at(r.record, "method") + "|" + num_key(number_at(r.record, {"length"}));
  });
  if (recs.empty()) return std::nullopt;
  const bool several = several_models(in.perplexity);
  json rows = json::array(), rules = json::array();
  std::set<std::pair<std::string, double>> T_trains;  // (model, T_train)
  for (const auto* r : recs) {
    const json& j = r->record;
    const auto len = number_at(j, {"length"}), ppl = number_at(j, {"perplexity"});
    if (!(*len > 0 && *ppl > 0)) continue;  // not on log axes
    rows.push_back({{"model", r->model}, {"method", str_at(j, "method")}, {"length", *len}, {"perplexity", *ppl},
                    {"nll", number_at(j, {"nll"}) ? json(*number_at(j, {"nll"})) : json()},
                    {"windows", number_at(j, {"windows"}) ? json(*number_at(j, {"windows"})) : json()}});
    if (const auto t = t_train(in, *r); t && *t > 0) T_trains.emplace(r->model, *t);
  }
  if (rows.empty()) return std::nullopt;
  for (const auto& [model, t] : T_trains) rules.push_back({{"T_train", t}, {"rule", "T_train"}});
  const std::string caption =
      "perplexity of \"perplexity\" records (ropelab eval niah) vs length, log–log, one line per method" +
      std::string(several ? ", one panel per model" : "") + " (newest step)" +
      (T_trains.empty() ? "; no T_train in the records or run configs, so no rule."
                        : "; dashed rule at the training length T_train (the record's, else its run's "
                          "config model.T_train).");
  // A line per method (the same colour for a method in every panel), and a
  // dashed rule at T_train on the same log x axis.
  json curve = {{"mark", {{"type", "line"}, {"point", true}}},
                {"encoding", {{"x", axis("length", "evaluation length (tokens)", "log")},
                              {"y", axis("perplexity", "perplexity", "log")},
                              {"color", nominal("method", "method")},
                              {"tooltip", {nominal("method", "method"), axis("length", "length"),
                                           axis("perplexity", "perplexity"), axis("nll", "NLL"),
                                           axis("windows", "windows")}}}}};
  json rule = {{"mark", {{"type", "rule"}, {"color", "#777"}, {"strokeDash", {4, 4}}}},
               {"encoding", {{"x", axis("T_train", "evaluation length (tokens)", "log")},
                             {"tooltip", {nominal("rule", "rule"), axis("T_train", "T_train")}}}}};
  json spec = base_spec("Perplexity vs length");
  if (several) {
    // One panel per model: one data set, curves and rules told apart by filters.
    json values = rows;
    for (const auto& [model, t] : T_trains) values.push_back({{"model", model}, {"T_train", t}, {"rule", "T_train"}});
    curve["transform"] = {{{"filter", "isValid(datum.perplexity)"}}};
    rule["transform"] = {{{"filter", "isValid(datum.T_train)"}}};
    spec.erase("width"), spec.erase("height");
    spec["data"] = {{"values", values}};
    spec["facet"] = {{"field", "model"}, {"type", "nominal"}, {"title", "model"}};
    spec["columns"] = 2;
    spec["resolve"] = {{"scale", {{"y", "independent"}}}};
    spec["spec"] = {{"width", 360}, {"height", 220}, {"layer", {curve, rule}}};
  } else {
    curve["data"] = {{"values", rows}};
    spec["layer"] = json::array({curve});  // not = {curve}: clang copies the object (CWG 1467)
    if (!rules.empty()) {
      rule["data"] = {{"values", rules}};
      spec["layer"].push_back(rule);
    }
  }
  return Chart{"perplexity-vs-length", "Perplexity vs evaluation length", caption, spec};
}

// Data: "kv" records (ropelab eval kv), the newest step per model, policy, ratio and f.
std::optional<Chart> kv_quality_chart(const Inputs& in) {
  const auto recs = newest_per(in.kv, [](const ResultRecord& r) {
    return r.model + "|" + str_at(r.record, "policy") + "|" + num_key(number_at(r.record, {"ratio"})) + "|" +
           num_key(number_at(r.record, {"f"}));
  });
  if (recs.empty()) return std::nullopt;
  const bool several = several_models(in.kv);
  json lines = json::array(), df = json::array(), mass = json::array();
  json niah_lines = json::array(), niah_df = json::array();
  std::map<std::string, json> niah_refs;  // model -> its full-cache retrieval
  for (const auto* r : recs) {
    const json& j = r->record;
    const std::string policy = str_at(j, "policy");
    const auto retained = number_at(j, {"retained_mass"}), f = number_at(j, {"f"});
    json row = {{"series", line_label(policy, *r, several)}, {"ratio", *number_at(j, {"ratio"})},
                {"rel_pct", 100 * *number_at(j, {"rel_loss_increase"})},
                {"retained_mass", retained ? json(*retained) : json()},
                {"budget", number_at(j, {"budget"}) ? json(*number_at(j, {"budget"})) : json()}};
    if (const auto niah = number_at(j, {"niah_rank_accuracy"})) {
      row["niah"] = *niah;
      json point = row;
      point["label"] = f ? "f=" + fmt_g(*f) : "";
      (policy == "df" && f ? niah_df : niah_lines).push_back(point);
      if (const auto full = number_at(j, {"niah_rank_accuracy_full"}))
        niah_refs[r->model] = {{"y", *full}, {"which", "full cache"}};
    }
    if (policy != "df" || !f) {
      lines.push_back(row);
      continue;
    }
    row["label"] = "f=" + fmt_g(*f);
    df.push_back(row);
    if (retained) mass.push_back({{"series", row["series"]}, {"ratio", row["ratio"]}, {"mass", *retained},
                                  {"which", "measured (retained_mass)"}, {"label", row["label"]}});
    if (const auto p = number_at(j, {"predicted_mass"}))
      mass.push_back({{"series", row["series"]}, {"ratio", row["ratio"]}, {"mass", *p},
                      {"which", "predicted (predicted_mass = f)"}, {"label", row["label"]}});
  }
  const json x = axis("ratio", "kept ratio (budget / context)");
  const json color = nominal("series", several ? "policy · model" : "policy");
  const json tip = {nominal("series", "policy"), axis("ratio", "ratio"), axis("budget", "budget"),
                    axis("rel_pct", "rel. loss increase (%)"), axis("retained_mass", "retained mass")};
  auto layer = [](const json& values, const json& mark, const json& enc) {
    return json{{"data", {{"values", values}}}, {"mark", mark}, {"encoding", enc}};
  };
  json loss = {{"width", kWidth}, {"height", 240}, {"layer", json::array()}};
  json kept = {{"width", kWidth}, {"height", 200}, {"layer", json::array()}};
  const json y_loss = axis("rel_pct", "rel. loss increase (%)"), y_mass = axis("retained_mass", "retained attention mass");
  if (!lines.empty()) {
    loss["layer"].push_back(layer(lines, {{"type", "line"}, {"point", true}},
                                  {{"x", x}, {"y", y_loss}, {"color", color}, {"tooltip", tip}}));
    kept["layer"].push_back(layer(lines, {{"type", "line"}, {"point", true}},
                                  {{"x", x}, {"y", y_mass}, {"color", color}, {"tooltip", tip}}));
  }
  if (!df.empty()) {
    loss["layer"].push_back(layer(df, {{"type", "point"}, {"shape", "diamond"}, {"filled", true}, {"size", 90}},
                                  {{"x", x}, {"y", y_loss}, {"color", color}, {"tooltip", tip}}));
    loss["layer"].push_back(layer(df, {{"type", "text"}, {"dy", -10}},
                                  {{"x", x}, {"y", y_loss}, {"text", {{"field", "label"}}}}));
  }
  if (!mass.empty()) {
    const json y = axis("mass", "retained attention mass");
    kept["layer"].push_back(layer(mass, {{"type", "point"}, {"size", 80}, {"strokeWidth", 2}},
                                  {{"x", x}, {"y", y}, {"color", color}, {"shape", nominal("which", "D_f mass")},
                                   {"tooltip", {nominal("which", "mass"), nominal("label", "f"), axis("ratio", "ratio"),
                                                axis("mass", "mass")}}}));
    json labels = layer(mass, {{"type", "text"}, {"dx", 10}, {"align", "left"}},
                        {{"x", x}, {"y", y}, {"text", {{"field", "label"}}}});
    labels["transform"] = {{{"filter", "indexof(datum.which, 'predicted') == 0"}}};  // one label per df point
    kept["layer"].push_back(labels);
  }
  // Retrieval on the compressed cache (--niah-trials), with the full cache's and chance as rules.
  json retrieval = {{"width", kWidth}, {"height", 200}, {"layer", json::array()}};
  if (!niah_lines.empty() || !niah_df.empty()) {
    const json y = {{"field", "niah"}, {"type", "quantitative"}, {"title", "passkey rank accuracy"},
                    {"scale", {{"domain", {0, 1}}}}};
    const json ntip = {nominal("series", "policy"), axis("ratio", "ratio"), axis("niah", "rank accuracy")};
    if (!niah_lines.empty())
      retrieval["layer"].push_back(layer(niah_lines, {{"type", "line"}, {"point", true}},
                                         {{"x", x}, {"y", y}, {"color", color}, {"tooltip", ntip}}));
    if (!niah_df.empty())
      retrieval["layer"].push_back(layer(niah_df, {{"type", "point"}, {"shape", "diamond"}, {"filled", true}, {"size", 90}},
                                         {{"x", x}, {"y", y}, {"color", color}, {"tooltip", ntip}}));
    json rules = json::array({{{"y", 0.1}, {"which", "chance (0.1)"}}});
    for (const auto& [model, rule] : niah_refs) rules.push_back(rule);
    retrieval["layer"].push_back(layer(rules, {{"type", "rule"}, {"strokeDash", {4, 4}}},
                                       {{"y", {{"field", "y"}, {"type", "quantitative"}}},
                                        {"strokeDash", nominal("which", "reference")}}));
  }
  json spec = base_spec("KV cache: quality vs kept ratio");
  spec.erase("width"), spec.erase("height");
  spec["vconcat"] = json::array();
  spec["vconcat"].push_back(loss);
  if (!kept["layer"].empty()) spec["vconcat"].push_back(kept);
  if (!retrieval["layer"].empty()) spec["vconcat"].push_back(retrieval);
  return Chart{"kv-quality", "KV cache: loss and retained mass vs kept ratio",
               "From \"kv\" records (ropelab eval kv), newest step. Top: rel_loss_increase (%) vs ratio, one line per "
               "policy; the df policy's points (diamonds, labelled f) keep the D_f budget for attention mass f. "
               "Middle: retained_mass vs ratio; for df, measured retained_mass and predicted_mass (= f) as "
               "distinct shapes at the same ratio, so measured and predicted mass can be compared. Bottom, when the "
               "records have it (--niah-trials): passkey rank accuracy on the compressed cache vs ratio, with the "
               "full cache's accuracy and chance (0.1) as dashed rules.",
               spec};
}

// Data: "niah_pooled" records, the newest step per model, method and length; only panels
// (family, model) with at least two fixed factors (a curve) are drawn, so none and logn are not.
std::optional<Chart> alpha_sweep_chart(const Inputs& in) {
  const auto recs = newest_per(in.niah_pooled, [](const ResultRecord& r) {
    return r.model + "|" + str_at(r.record, "method") + "|" + num_key(number_at(r.record, {"length"}));
  });
  const bool several = several_models(in.niah_pooled);
  std::map<std::string, std::set<double>> fixed;  // panel -> factors on its curve (none, logn: one)
  json rows = json::array();
  for (const auto* r : recs) {
    const json& j = r->record;
    const std::string family = str_at(j, "family", ""), source = str_at(j, "alpha_source", "fixed");
    const double factor = *number_at(j, {"scaling_factor"});
    if (!(factor > 0)) continue;
    const std::string panel = family + (several ? " · " + r->model : "");
    if (source == "fixed") fixed[panel].insert(factor);
    json row = {{"panel", panel}, {"method", str_at(j, "method")}, {"source", source}, {"factor", factor},
                {"length", *number_at(j, {"length"})}, {"accuracy", *number_at(j, {"rank_accuracy"})},
                {"trials", number_at(j, {"trials"}) ? json(*number_at(j, {"trials"})) : json()},
                {"step", r->step ? json(*r->step) : json()}};
    add_ci(row, j, "rank_ci95", "lo", "hi");
    rows.push_back(row);
  }
  json values = json::array();
  for (const auto& row : rows)
    if (fixed[row["panel"].get<std::string>()].size() >= 2) values.push_back(row);
  if (values.empty()) return std::nullopt;
  const json x = axis("factor", "α (NTK θ' = αθ) or scale S (YaRN, PI)", "log");
  // Nominal, not ordinal: a sequential ramp makes neighbouring lengths look alike.
  const json colour = {{"field", "length"}, {"type", "nominal"}, {"title", "length (tokens)"}};
  const json tooltip = {nominal("method", "method"), axis("length", "length"), axis("factor", "factor"),
                        axis("accuracy", "rank accuracy"), axis("lo", "CI95 lo"), axis("hi", "CI95 hi"),
                        axis("trials", "prompts"), axis("step", "step")};
  const json is_fixed = {{"filter", "datum.source == 'fixed'"}}, is_closed = {{"filter", "datum.source != 'fixed'"}};
  const json y = {{"field", "accuracy"}, {"type", "quantitative"}, {"title", "rank accuracy (depths pooled)"},
                  {"scale", {{"domain", {0, 1}}}}};
  json y_lo = y;  // the CI bars share the axis and its title
  y_lo["field"] = "lo";
  json curve = {{"transform", json::array({is_fixed})}, {"mark", {{"type", "line"}, {"point", true}}},
                {"encoding", {{"x", x}, {"y", y}, {"color", colour}, {"tooltip", tooltip}}}};
  json bars = {{"transform", json::array({{{"filter", "isValid(datum.lo)"}}})}, {"mark", {{"type", "rule"}, {"opacity", 0.5}}},
               {"encoding", {{"x", x}, {"y", y_lo}, {"y2", {{"field", "hi"}}}, {"color", colour}}}};
  json marks = {{"transform", json::array({is_closed})}, {"mark", {{"type", "point"}, {"filled", true}, {"size", 160}}},
                {"encoding", {{"x", x}, {"y", y}, {"color", colour}, {"tooltip", tooltip},
                              {"shape", {{"field", "source"}, {"type", "nominal"}, {"title", "closed form"},
                                         {"scale", {{"domain", {"alpha_opt", "alpha_opt_measured"}},
                                                    {"range", {"diamond", "triangle-up"}}}}}}}}};
  json chance = {{"mark", {{"type", "rule"}, {"color", "#777"}, {"strokeDash", {4, 4}}}},
                 {"encoding", {{"y", {{"datum", 0.1}}}}}};
  json spec = base_spec("NIAH accuracy against the scaling factor, with α_opt marked");
  spec.erase("width"), spec.erase("height");
  spec["data"] = {{"values", values}};
  spec["facet"] = nominal("panel", "family · model");
  spec["columns"] = 2;
  // Each panel its own axes: with only x independent, Vega-Lite drew the right
  // column's y scale offset from the left's (chance at 0.06 instead of 0.1).
  // y's domain is fixed at [0, 1], so independent axes still read alike.
  spec["resolve"] = {{"scale", {{"x", "independent"}, {"y", "independent"}}}, {"axis", {{"y", "independent"}}}};
  spec["spec"] = {{"width", 360}, {"height", 220}, {"layer", json::array({curve, bars, marks, chance})}};
  return Chart{"alpha-sweep", "NIAH accuracy vs α, with α_opt marked",
               "rank_accuracy of \"niah_pooled\" records (ropelab eval niah; each method's depths pooled, Wilson "
               "CI95 bars) against the factor applied, log axis, one line per length. Diamonds: NTK/YaRN at the "
               "closed-form α_opt(θ, L, γ_t); triangles: α_opt with the checkpoint's measured γ (--gamma-from). "
               "Every factor was scored on the same prompts. Dashed: chance (0.1). Newest step per point.",
               spec};
}

const std::vector<ChartBuilder>& chart_builders() {
  // Page order; a later chart is one more function here.
  static const std::vector<ChartBuilder> builders = {loss_curves_chart,    gamma_fit_chart,
                                                     gamma_flow_chart,     gamma_vs_theta_chart,
                                                     niah_heatmap_chart,   perplexity_vs_length_chart,
                                                     alpha_sweep_chart,    kv_quality_chart};
  return builders;
}

std::vector<Chart> build_charts(const Inputs& in) {
  std::vector<Chart> charts;
  for (ChartBuilder b : chart_builders())
    if (auto c = b(in)) charts.push_back(std::move(*c));
  return charts;
}

}  // namespace ropelab::report
