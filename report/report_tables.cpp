#include "report/report_tables.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "common/run_dir.h"
#include "report/between_trainings.h"
#include "report/report_charts.h"

namespace ropelab::report {
namespace {

using nlohmann::json;

std::string fmt(const std::optional<double>& v, const char* f = "%.4f") {
  if (!v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, *v);
  return buf;
}
std::string step_cell(const std::optional<int64_t>& s) { return s ? std::to_string(*s) : "-"; }
// θ as in run directory names: 1e4, 2.5e5, 500.
std::string theta_cell(double theta) { return theta > 0 && std::isfinite(theta) ? rundir::theta_label(theta) : fmt(theta, "%g"); }

std::string interval(const std::optional<double>& lo, const std::optional<double>& hi) {
  return lo && hi ? "[" + fmt(lo) + ", " + fmt(hi) + "]" : "-";
}

Table gamma_summary(const std::vector<SummaryRow>& rows) {
  Table t{"summary-table", "Summary",
          "One row per run and protocol (its final checkpoint's γ record) and per fit-gamma record. Protocol taf: "
          "prompts of d + tail tokens, where the raw γ is inflated by the softmax's normalisation over a prompt that "
          "grows with d (uniform attention reads the uniform baseline), and γ intrinsic is the exponent fitted with "
          "that normalisation modelled; fixed: one prompt length, where uniform attention reads 0 and the two "
          "estimates agree (docs/gamma-protocol.md). CIs resample prompt seeds and distances of one trained model, "
          "not trainings. rel. error = |γ − γ_Padé| / |γ_Padé| for the raw γ.",
          {"run / model", "step", "protocol", "θ", "T_eval", "γ raw", "CI95", "γ intrinsic", "CI95", "R²", "γ_Padé",
           "rel. error", "uniform baseline γ"},
          {false, true, false, true, true, true, true, true, true, true, true, true, true},
          {},
          "(no γ records)"};
  for (const auto& r : rows)
    t.rows.push_back({r.model, step_cell(r.step), r.protocol.empty() ? "-" : r.protocol, fmt(r.theta, "%g"),
                      fmt(r.T_eval, "%g"), fmt(r.gamma), interval(r.ci95_lo, r.ci95_hi), fmt(r.gamma_intrinsic),
                      interval(r.intrinsic_lo, r.intrinsic_hi), fmt(r.R2), fmt(r.gamma_pade),
                      r.relative_error ? fmt(*r.relative_error * 100, "%.1f") + "%" : "-", fmt(r.uniform_baseline)});
  return t;
}

// Rows keyed by strings in first-seen order, columns by a number in increasing order.
template <typename Cell>
struct Grid {
  std::vector<std::vector<std::string>> keys;              // row keys, first seen first
  std::map<std::vector<std::string>, std::map<double, Cell>> cells;
  std::set<double> columns;
  Cell& at(const std::vector<std::string>& key, double column) {
    if (!cells.count(key)) keys.push_back(key);
    columns.insert(column);
    return cells[key][column];
  }
};

// Rank accuracy (and greedy exact match) per method and length, pooled over
// depths weighted by trials.
Table niah_table(const Inputs& in) {
  struct Acc { double trials = 0, rank = 0, exact = 0, exact_trials = 0; };
  Grid<Acc> g;
  double chance = 0;
  // As in the heatmap: the newest record per cell (model, task, method, length, depth), then pooled over depths.
  const auto newest = newest_per(in.niah, [](const ResultRecord& k) {
    return k.model + "|" + str_at(k.record, "task", "passkey") + "|" + str_at(k.record, "method", "?") + "|" +
           num_key(number_at(k.record, {"length"})) + "|" + num_key(number_at(k.record, {"depth"}));
  });
  for (const ResultRecord* kp : newest) {
    const ResultRecord& k = *kp;
    const json& r = k.record;
    const double n = number_at(r, {"trials"}).value_or(1);
    Acc& a = g.at({k.model, step_cell(k.step), str_at(r, "task", "passkey"), str_at(r, "method", "?")},
                  *number_at(r, {"length"}));
    a.trials += n;
    a.rank += n * *number_at(r, {"rank_accuracy"});
    if (const auto e = number_at(r, {"exact_accuracy"})) a.exact += n * *e, a.exact_trials += n;
    chance = number_at(r, {"rank_chance"}).value_or(chance);
  }
  Table t{"niah-table", "NIAH retrieval",
          "Rank accuracy of the true value among " + (chance > 0 ? fmt(1 / chance, "%.0f") : std::string("the")) +
              " candidates (chance " + fmt(chance, "%.2g") + "), greedy exact match in parentheses, pooled over depths; "
              "one column per evaluation length in tokens.",
          {"model", "step", "task", "method"}, {false, true, false, false}, {}, ""};
  for (double L : g.columns) t.columns.push_back(fmt(L, "%g")), t.numeric.push_back(true);
  for (const auto& key : g.keys) {
    std::vector<std::string> row = key;
    for (double L : g.columns) {
      const auto it = g.cells[key].find(L);
      if (it == g.cells[key].end()) { row.push_back("-"); continue; }
      const Acc& a = it->second;
      row.push_back(fmt(a.rank / a.trials, "%.2f") + (a.exact_trials > 0 ? " (" + fmt(a.exact / a.exact_trials, "%.2f") + ")" : ""));
    }
    t.rows.push_back(row);
  }
  return t;
}

// A two-number array field (an interval, a span) as text, "-" when it is not one.
std::string pair_cell(const json& r, const char* key, const char* f) {
  if (!r.contains(key) || !r[key].is_array() || r[key].size() != 2 || !r[key][0].is_number() || !r[key][1].is_number())
    return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, r[key][0].get<double>(), r[key][1].get<double>());
  return buf;
}

// The closed form's α at one (model, family, length) beside the measured best:
// its value, the accuracy there ("*": inside the best's Wilson interval), and α*/α_opt.
// α* of an alpha_star record, "≥ α*" / "≤ α*" when it sits at the end of the sweep (censored).
std::string censored_cell(const json& r) {
  const std::string v = fmt(number_at(r, {"best_factor"}), "%.3g");
  const json c = r.value("alpha_star_censored", json());
  return c == "upper" ? "≥ " + v : c == "lower" ? "≤ " + v : v;
}

std::vector<std::string> closed_form_cells(const json& r, const char* form) {
  if (!r.contains(form) || !r[form].is_object()) return {"-", "-", "-"};
  const json& c = r[form];
  const auto value = number_at(c, {"value"});
  const std::string gamma = number_at(c, {"gamma"}) ? " (γ " + fmt(number_at(c, {"gamma"}), "%.3g") + ")" : "";
  if (!value) return {"undefined" + gamma, "-", "-"};
  const auto acc = number_at(c, {"accuracy"});
  const bool within = c.value("within_best_interval", false);
  return {fmt(value, "%.3g") + gamma, acc ? fmt(acc, "%.2f") + (within ? "*" : "") : "not run",
          fmt(number_at(c, {"ratio_best_to_value"}), "%.3g")};
}

// α* against α_opt over every run given ("alpha_star" records of eval niah sweeps).
Table alpha_star_table(const Inputs& in) {
  Table t{"alpha-star-table", "Measured best α against α_opt",
          "Per model, family and length: α* = the swept factor with the highest NIAH rank accuracy (depths pooled; "
          "the smallest on a tie), its accuracy and Wilson 95% interval; near-best = the span of swept factors whose "
          "accuracy lies inside that interval. Then α_opt(θ, L, γ_t) and α_opt with the checkpoint's measured γ: "
          "value (γ), the accuracy measured there on the same prompts (* = inside the best's interval), and "
          "α*/α_opt. \"undefined\": α_opt has no value at that γ (γ ≥ 1); \"not run\": outside the family's "
          "domain (a YaRN scale below 1). ≥ / ≤: α* at the top / bottom of the swept range, so the best factor "
          "lies there or beyond (censored). Liu and Men: the NTK factors Liu et al. 2023 and Men et al. 2024 "
          "require for this length (ntk only; * = inside the near-best span).",
          {"model", "step", "θ", "family", "length", "α*", "acc at α*", "near-best span", "α_opt (γ_t)", "acc",
           "α*/α_opt", "α_opt (measured γ)", "acc", "α*/α_opt", "Liu", "Men"},
          {false, true, true, false, true, true, true, false, true, true, true, true, true, true, true, true},
          {},
          ""};
  const auto newest = newest_per(in.alpha_star, [](const ResultRecord& k) {
    return k.model + "|" + str_at(k.record, "family", "?") + "|" + num_key(number_at(k.record, {"length"}));
  });
  for (const ResultRecord* k : newest) {
    const json& r = k->record;
    const auto theta = number_at(r, {"arch", "rope_theta"});
    const std::string acc = fmt(number_at(r, {"best_accuracy"}), "%.2f") + " " + pair_cell(r, "best_ci95", "[%.2f, %.2f]");
    std::vector<std::string> row = {k->model, step_cell(k->step), theta ? theta_cell(*theta) : "-",
                                    str_at(r, "family", "?"), fmt(number_at(r, {"length"}), "%g"),
                                    censored_cell(r), acc, pair_cell(r, "near_best_span", "%.3g – %.3g")};
    for (const char* form : {"alpha_opt", "alpha_opt_measured"})
      for (auto& c : closed_form_cells(r, form)) row.push_back(c);
    for (const char* form : {"liu", "men"}) {
      const auto v = number_at(r.value("other_forms", json::object()).value(form, json::object()), {"value"});
      const bool inside = r.value("other_forms", json::object()).value(form, json::object()).value("inside_near_best_span", false);
      row.push_back(v ? fmt(v, "%.3g") + (inside ? "*" : "") : "-");
    }
    t.rows.push_back(row);
  }
  return t;
}

// Retrieval on the compressed cache (and the loss change) per policy and kept ratio.
Table kv_retrieval_table(const Inputs& in) {
  struct Cell { std::optional<double> retrieval, rel_loss; };
  Grid<Cell> g;
  std::map<std::vector<std::string>, double> full;  // (model, step) → retrieval with the whole cache
  for (const auto& k : in.kv) {
    const json& r = k.record;
    const std::string policy = r["policy"].get<std::string>();
    if (policy == "full" || policy == "df") continue;  // the reference; D_f has its own table
    Cell& c = g.at({k.model, step_cell(k.step), policy}, *number_at(r, {"ratio"}));
    c.rel_loss = number_at(r, {"rel_loss_increase"});
    c.retrieval = number_at(r, {"niah_rank_accuracy"});  // absent when eval kv ran without --niah-trials
    if (const auto f = number_at(r, {"niah_rank_accuracy_full"})) full[{k.model, step_cell(k.step)}] = *f;
  }
  Table t{"kv-retrieval-table", "KV cache: retrieval and loss per budget",
          "Per policy and kept fraction of the cache: passkey rank accuracy with the compressed cache (the "
          "haystack compressed before the question is read), and in parentheses the held-out loss change against "
          "the full cache. The full-cache column is the reference retrieval.",
          {"model", "step", "policy", "full cache"}, {false, true, false, true}, {}, ""};
  for (double ratio : g.columns) t.columns.push_back("keep " + fmt(ratio, "%g")), t.numeric.push_back(true);
  for (const auto& key : g.keys) {
    const auto f = full.find({key[0], key[1]});
    std::vector<std::string> row = {key[0], key[1], key[2], f == full.end() ? "-" : fmt(f->second, "%.2f")};
    for (double ratio : g.columns) {
      const auto it = g.cells[key].find(ratio);
      if (it == g.cells[key].end()) { row.push_back("-"); continue; }
      const Cell& c = it->second;
      row.push_back((c.retrieval ? fmt(c.retrieval, "%.2f") + " " : "") +
                    (c.rel_loss ? "(" + fmt(*c.rel_loss * 100, "%+.1f") + "%)" : ""));
    }
    t.rows.push_back(row);
  }
  return t;
}

// The closed-form window: sinks + the last D_f tokens, the attention mass it
// keeps against the f it was sized for.
Table df_table(const Inputs& in) {
  Table t{"kv-df-table", "KV cache: the D_f window against its prediction",
          "The window of sinks + the last D_f tokens, D_f from the measured γ, the context N and the mass fraction f. "
          "Mass is compared like for like: the window alone (measured, sinks excluded) against the power law's share "
          "of the window (≥ f by construction), and the whole kept cache (sinks included) against the power law's "
          "share of window and sinks. Then the held-out loss change and retrieval with it.",
          {"model", "step", "γ", "N", "f", "D_f discrete", "D_f continuum", "kept", "sinks", "window mass",
           "predicted", "kept mass (with sinks)", "predicted", "Δ loss", "retrieval"},
          {false, true, true, true, true, true, true, true, true, true, true, true, true, true, true},
          {},
          ""};
  for (const auto& k : in.kv) {
    const json& r = k.record;
    if (r["policy"] != "df") continue;
    const auto retrieval = number_at(r, {"niah_rank_accuracy"});
    const auto rel = number_at(r, {"rel_loss_increase"});
    t.rows.push_back({k.model, step_cell(k.step), fmt(number_at(r, {"gamma"}), "%.3f"), fmt(number_at(r, {"context"}), "%g"),
                      fmt(number_at(r, {"f"}), "%g"), fmt(number_at(r, {"D_f_discrete"}), "%g"),
                      fmt(number_at(r, {"D_f_continuum"}), "%.1f"), fmt(number_at(r, {"budget"}), "%g"),
                      fmt(number_at(r, {"sinks"}), "%g"), fmt(number_at(r, {"window_mass"}), "%.3f"),
                      fmt(number_at(r, {"predicted_window_mass"}), "%.3f"), fmt(number_at(r, {"retained_mass"}), "%.3f"),
                      fmt(number_at(r, {"predicted_retained_mass"}), "%.3f"), rel ? fmt(*rel * 100, "%+.1f") + "%" : "-",
                      fmt(retrieval, "%.2f")});
  }
  return t;
}

// How far each method retrieves, beside the lengths Liu's T_extra and Men's
// B(m) >= 0 bound predict for a fixed base.
Table reach_table(const Inputs& in) {
  Table t{"niah-reach-table", "How far retrieval reaches",
          "Per method: the longest length whose pooled NIAH rank accuracy has its Wilson 95% lower bound above chance "
          "(none: no length did), and for an unscaled model or a fixed NTK α (θ' = α·θ) the longest context Liu et al. "
          "2023 predict (T_extra = 2π·θ'^(d_extra/d), d_extra from training) and Men et al. 2024 (the last m before "
          "B(m) = Σ cos(m·θ'^(−2i/d)) first turns negative).",
          {"model", "step", "method", "lengths measured", "longest retrieving", "Liu T_extra", "Men bound"},
          {false, true, false, false, true, true, true}, {}, ""};
  for (const auto* k : newest_per(in.niah_reach, [](const ResultRecord& r) { return r.model + "|" + str_at(r.record, "method"); })) {
    const json& r = k->record;
    std::string lengths;
    for (const auto& L : r.value("lengths", json::array())) lengths += (lengths.empty() ? "" : ", ") + L.dump();
    const json pred = r.value("predicted_longest", json());
    const json men = pred.is_object() ? pred.value("men_first_violation_minus_1", json()) : json();
    t.rows.push_back({k->model, step_cell(k->step), str_at(r, "method"), lengths,
                      number_at(r, {"longest_retrieving_length"}) ? fmt(number_at(r, {"longest_retrieving_length"}), "%g") : "none",
                      pred.is_object() ? fmt(number_at(pred, {"liu_T_extra"}), "%.0f") : "-",
                      men.is_number() ? fmt(men.get<double>(), "%.0f") : men.is_string() ? men.get<std::string>() : "-"});
  }
  return t;
}

Table kv_budget_table(const Inputs& in) {
  Table t{"kv-summary-table", "KV cache: smallest budget within ε",
          "Per policy: the smallest kept ratio whose held-out loss is within ε (relative) of the full cache "
          "(none: no ratio tested was).",
          {"model", "step", "policy", "smallest ratio within ε", "ε"}, {false, true, false, true, true}, {}, ""};
  for (const auto& k : in.kv_summary) {
    if (k.record["policy"] == "full") continue;  // the reference itself
    t.rows.push_back({k.model, step_cell(k.step), k.record["policy"].get<std::string>(),
                      number_at(k.record, {"smallest_ratio_within_epsilon"})
                          ? fmt(number_at(k.record, {"smallest_ratio_within_epsilon"}), "%.3g")
                          : "none",
                      fmt(number_at(k.record, {"epsilon"}), "%g")});
  }
  return t;
}

// The check behind Expected Attention, which models future queries as one
// Gaussian: per (layer, KV head), the BIC-best number of mixture components
// and how much better it is than one.
Table query_gmm_table(const Inputs& in) {
  Grid<std::string> g;
  for (const auto& k : in.query_gmm) {
    const json& r = k.record;
    g.at({k.model, step_cell(k.step), fmt(number_at(r, {"layer"}), "%.0f")}, *number_at(r, {"kv_head"})) =
        fmt(number_at(r, {"best_K"}), "%.0f") + " (" + fmt(number_at(r, {"delta_BIC_vs_K1"}), "%.0f") + ")";
  }
  Table t{"query-gmm-table", "Query distribution: Gaussian mixtures per KV head",
          "Per layer and KV head: the number of components K (of 1..max K) whose Gaussian mixture, fitted by EM to the "
          "pre-RoPE queries, has the lowest BIC, and in parentheses BIC(K = 1) − BIC(best), the evidence against the "
          "single Gaussian that Expected Attention assumes (above 10 is strong).",
          {"model", "step", "layer"}, {false, true, true}, {}, ""};
  for (double head : g.columns) t.columns.push_back("KV head " + fmt(head, "%.0f")), t.numeric.push_back(true);
  for (const auto& key : g.keys) {
    std::vector<std::string> row = key;
    for (double head : g.columns) {
      const auto it = g.cells[key].find(head);
      row.push_back(it == g.cells[key].end() ? "-" : it->second);
    }
    t.rows.push_back(row);
  }
  return t;
}

// `ropelab pilot`'s stage log: what ran, how long it took, how it ended
// (an interrupted and resumed stage has a row per attempt).
Table stages_table(const Inputs& in) {
  Table t{"stages-table", "Study stages", "Each stage `ropelab pilot` ran, in the order they ended (OUT/pilot.jsonl has the commands).",
          {"run", "stage", "wall time", "exit code"}, {true, false, true, true}, {}, ""};
  for (const auto& k : in.stages) {
    const json& r = k.record;
    const double secs = *number_at(r, {"seconds"});
    char wall[32];
    std::snprintf(wall, sizeof wall, "%d min %02d s", int(secs) / 60, int(secs) % 60);
    const auto theta = number_at(r, {"theta"});
    const auto seed = number_at(r, {"seed"});
    const std::string run = r["stage"] == "report" || !theta
                                ? "-"
                                : theta_cell(*theta) + (seed ? " seed " + fmt(seed, "%.0f") : "");
    t.rows.push_back({run, r["stage"].get<std::string>(), wall, fmt(number_at(r, {"exit_code"}), "%g")});
  }
  return t;
}

// γ per layer type (eval gamma's ropelab.per_layer_type) of each run's newest
// checkpoint: for models with per-layer attention (full, sliding, nope layers).
Table layer_type_table(const Inputs& in) {
  Table t{"layer-type-table", "γ per layer type",
          "For models whose layers differ (layer_pattern: full layers with the model's RoPE method, sliding layers "
          "at their own θ and window, nope layers without position encoding): γ fitted to A(d) averaged over the "
          "layers of each type, at each run's newest checkpoint, beside the whole model's γ; a sliding type over the "
          "distances inside its window only (beyond it its attention is 0 by construction). The whole model's γ of "
          "a model with sliding layers averages in those zeros, so it reads the window, not a decay: compare such "
          "models by layer type. The interval is the "
          "fit's bootstrap over prompts and distances (one training), not a between-training interval.",
          {"model", "step", "protocol", "layer type", "layers", "γ", "95% CI", "R²", "γ (whole model)", "note"},
          {false, true, false, false, false, true, false, true, true, false},
          {},
          ""};
  for (const auto& g : final_records(in)) {
    const json& r = g.record;
    if (!r.contains("ropelab") || !r["ropelab"].contains("per_layer_type") || !r["ropelab"]["per_layer_type"].is_object())
      continue;
    for (const auto& [type, f] : r["ropelab"]["per_layer_type"].items()) {
      std::string layers;
      for (const auto& l : f.value("layers", json::array())) layers += (layers.empty() ? "" : ",") + l.dump();
      t.rows.push_back({g.series, step_cell(g.step), g.protocol, type, layers, fmt(number_at(f, {"gamma"}), "%.3f"),
                        interval(number_at(f, {"ci95_lo"}), number_at(f, {"ci95_hi"})), fmt(number_at(f, {"R2"}), "%.3f"),
                        fmt(number_at(r, {"measurement", "gamma"}), "%.3f"),
                        f.contains("error") && f["error"].is_string() ? f["error"].get<std::string>() : ""});
    }
  }
  return t;
}

}  // namespace

std::vector<Table> build_tables(const Inputs& in, const std::vector<SummaryRow>& summary) {
  return {gamma_summary(summary), layer_type_table(in), between_trainings_table(in.between_trainings), niah_table(in),    alpha_star_table(in),
          reach_table(in),        kv_retrieval_table(in),            df_table(in),      kv_budget_table(in),
          query_gmm_table(in),    stages_table(in)};
}

}  // namespace ropelab::report
