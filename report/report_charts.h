// The report's charts: each a Vega-Lite spec with its data inlined, built
// from the collected inputs by one function that returns nothing when its
// data is absent.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "report/report.h"

namespace ropelab::report {

struct Chart {
  std::string id;       // the page's container is "chart-<id>"; the figure is figures/<id>.svg
  std::string title;
  std::string caption;  // what is drawn and where its data comes from
  nlohmann::json spec;  // Vega-Lite (v6), data inlined
};

// 1. train loss and val_loss vs step, one line per run (RUN_DIR/metrics.jsonl)
std::optional<Chart> loss_curves_chart(const Inputs& in);
// 2. A(d) on log-log axes with the power-law and exponential fits, for each run's
//    newest checkpoint and each `fit gamma` record (ropelab.A, measurement.distances,
//    measurement.fit.log_A, ropelab.exp_fit)
std::optional<Chart> gamma_fit_chart(const Inputs& in);
// 3. γ with its CI95 band vs step per run, with γ_Padé and the uniform-attention
//    baseline (ropelab.uniform_baseline_gamma) as horizontal rules
std::optional<Chart> gamma_flow_chart(const Inputs& in);
// 4. measured γ (CI95 bars) vs arch.rope_theta for each run's final checkpoint and
//    each `fit gamma` record, under the curve γ_Padé(θ, T_eval) for each T_eval present
std::optional<Chart> gamma_vs_theta_chart(const Inputs& in);

// 5. NIAH rank_accuracy as a length × depth heatmap (colour 0..1), one panel per
//    method (and model); tooltip: exact_accuracy and the CI95s ("niah" records)
std::optional<Chart> niah_heatmap_chart(const Inputs& in);
// 6. perplexity vs length, log–log, one line per method (and model), with a rule at
//    T_train when the record or its run's config gives it ("perplexity" records)
std::optional<Chart> perplexity_vs_length_chart(const Inputs& in);
// 7. rel_loss_increase (%) vs kept ratio per policy, df points labelled f; below,
//    retained_mass vs ratio with df's measured and predicted mass ("kv" records)
std::optional<Chart> kv_quality_chart(const Inputs& in);

// 8. NIAH rank accuracy (depths pooled, CI95 bars) vs the scaling factor on a log axis,
//    one line per length, one panel per family (ntk, ntk-aware, yarn, pi) and model, with
//    the closed-form α_opt points (γ_t and measured γ) marked ("niah_pooled" records)
std::optional<Chart> alpha_sweep_chart(const Inputs& in);

// The charts, in page order. A later chart is one more function of this shape
// appended to the list in report_charts.cpp: it reads its records from Inputs
// (add the record kind to Inputs and to the reader's classification in
// report.cpp) and returns std::nullopt when they are absent.
using ChartBuilder = std::optional<Chart> (*)(const Inputs&);
const std::vector<ChartBuilder>& chart_builders();
std::vector<Chart> build_charts(const Inputs& in);

// The newest record (largest step; the later one on a tie) per key, in first-seen order.
template <class Key>
inline std::vector<const ResultRecord*> newest_per(const std::vector<ResultRecord>& recs, Key key) {
  std::vector<const ResultRecord*> out;
  std::map<std::string, size_t> slot;
  for (const auto& r : recs) {
    const auto it = slot.find(key(r));
    if (it == slot.end()) slot[key(r)] = out.size(), out.push_back(&r);
    else if (r.step.value_or(INT64_MIN) >= out[it->second]->step.value_or(INT64_MIN)) out[it->second] = &r;
  }
  return out;
}

// A number at a JSON path, or nothing (missing, null, not a number, not finite).
std::optional<double> number_at(const nlohmann::json& j, std::initializer_list<const char*> path);
// The string at a top-level key, or `otherwise` (missing or not a string).
std::string str_at(const nlohmann::json& r, const char* key, const std::string& otherwise = "?");
// A number as a grouping key ("%.10g"; "nan" when absent).
std::string num_key(const std::optional<double>& v);

}  // namespace ropelab::report
