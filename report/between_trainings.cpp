#include "report/between_trainings.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "common/run_dir.h"
#include "report/report_charts.h"

namespace ropelab::report {
namespace fs = std::filesystem;
using json = nlohmann::json;

double t_quantile_975(int df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return NAN;
  if (df <= 30) return table[df - 1];
  // Beyond the table: the Cornish-Fisher expansion around z = 1.95996 (error < 1e-3 for df > 30).
  const double z = 1.959964, d = double(df);
  return z + (z * z * z + z) / (4 * d) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

namespace {

// Fields of a run's config that say how it was executed, not what was
// trained: runs that differ only in these (and the seed) are one recipe.
const std::set<std::string> kExecutionFields = {
    "seed",         "threads",     "device",   "world_size",   "dist_timeout_s", "dist_bucket_mb", "fault_nan_step",
    "fault_kill_at", "log_every",  "eval_every", "eval_batches", "checkpoints",   "autocast",       "fused_adamw",
    "ce_chunk",     "cuda_graph"};

struct Training {
  const Run* run = nullptr;
  std::string group;  // the recipe's key
  std::optional<double> seed;
};

struct Group {
  std::string key, label;
  double theta = 0;
  std::vector<const Training*> trainings;
};

std::string canonical(const std::string& p) {
  std::error_code ec;
  const auto c = fs::weakly_canonical(p, ec);
  return ec ? fs::path(p).lexically_normal().string() : c.string();
}

// One value per training, collected under a quantity and its keys.
struct Series {
  json keys;  // {"quantity": .., "protocol"/"method"/...: ..}
  std::map<const Training*, double> values;
  int censored = 0;
  json predicted;  // e.g. predicted_window_mass per training, averaged
  std::vector<double> predicted_values;
};

class Aggregator {
 public:
  explicit Aggregator(const Inputs& in) : in_(in) {
    for (const auto& r : in.runs) {
      if (!r.config.is_object() || !r.config.contains("model")) continue;
      Training t{&r, recipe_key(r.config), number_at(r.config, {"seed"})};
      trainings_.push_back(t);
    }
    for (const auto& t : trainings_) {
      by_dir_[canonical(t.run->dir)] = &t;
      by_label_[t.run->label] = &t;
      auto& g = groups_[t.group];
      g.key = t.group;
      g.theta = number_at(t.run->config, {"model", "rope_theta"}).value_or(0);
      g.trainings.push_back(&t);
    }
  }

  std::vector<json> records() {
    collect_gamma();
    collect_results();
    std::vector<const Group*> order;
    for (auto& [key, g] : groups_) {
      g.label = label_of(g);
      order.push_back(&g);
    }
    std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->theta < b->theta; });
    std::vector<json> out;
    for (const Group* g : order)
      for (auto& s : series_[g->key]) out.push_back(summarise(*g, s));
    return out;
  }

 private:
  const Inputs& in_;
  std::vector<Training> trainings_;
  std::map<std::string, const Training*> by_dir_, by_label_;
  std::map<std::string, Group> groups_;
  std::map<std::string, std::vector<Series>> series_;  // group → series in first-seen order

  static std::string recipe_key(const json& config) {
    json c = config;
    for (const auto& f : kExecutionFields) c.erase(f);
    return c.dump();
  }

  // "θ=1e4 · 4L d128 T128 · 8000 steps · passkey:0.75", and the recipe's
  // first difference from its θ's other groups when θ alone is not enough.
  std::string label_of(const Group& g) const {
    const json& c = g.trainings.front()->run->config;
    const json& m = c["model"];
    char buf[160];
    std::snprintf(buf, sizeof buf, "θ=%s · %gL d%g T%g · %g steps", rundir::theta_label(g.theta).c_str(),
                  number_at(m, {"n_layers"}).value_or(0), number_at(m, {"d_model"}).value_or(0),
                  number_at(m, {"T_train"}).value_or(0), number_at(c, {"max_steps"}).value_or(0));
    std::string label = buf;
    if (c.contains("data_mix") && c["data_mix"].is_string() && !c["data_mix"].get<std::string>().empty())
      label += " · " + c["data_mix"].get<std::string>();
    // The design, where the model has one beyond plain RoPE at one θ.
    if (m.contains("layer_pattern") && m["layer_pattern"].is_string() && !m["layer_pattern"].get<std::string>().empty())
      label += " · layers " + m["layer_pattern"].get<std::string>();
    if (m.contains("rope_scaling") && m["rope_scaling"].is_string() && m["rope_scaling"] != "none" && m["rope_scaling"] != "default")
      label += " · rope " + m["rope_scaling"].get<std::string>();
    int same_theta = 0;
    for (const auto& [key, other] : groups_) same_theta += other.theta == g.theta;
    if (same_theta > 1) label += " · recipe " + std::to_string(std::hash<std::string>{}(g.key) % 10000);
    return label;
  }

  Series& series(const Training& t, const json& keys) {
    auto& list = series_[t.group];
    for (auto& s : list)
      if (s.keys == keys) return s;
    list.push_back({keys, {}, 0, json(), {}});
    return list.back();
  }

  const Training* training_of_checkpoint(const json& record) const {
    if (!record.contains("checkpoint") || !record["checkpoint"].is_string()) return nullptr;
    const auto it = by_dir_.find(canonical(rundir::run_of_checkpoint(record["checkpoint"].get<std::string>())));
    return it == by_dir_.end() ? nullptr : it->second;
  }

  void collect_gamma() {
    for (const auto& g : final_records(in_)) {
      const auto it = by_label_.find(g.series);
      if (it == by_label_.end() || !g.step) continue;
      const json proto = g.protocol.empty() ? json() : json(g.protocol);
      if (const auto v = number_at(g.record, {"measurement", "gamma"}))
        series(*it->second, {{"quantity", "gamma"}, {"protocol", proto}}).values[it->second] = *v;
      if (const auto v = number_at(g.record, {"measurement", "gamma_intrinsic"}))
        series(*it->second, {{"quantity", "gamma_intrinsic"}, {"protocol", proto}}).values[it->second] = *v;
    }
  }

  void collect_results() {
    // The newest record of each kind per (training, keys).
    auto each_newest = [&](const std::vector<ResultRecord>& recs, auto key_of, auto take) {
      std::map<std::pair<const Training*, std::string>, const ResultRecord*> newest;
      std::vector<std::pair<const Training*, std::string>> order;
      for (const auto& r : recs) {
        const Training* t = training_of_checkpoint(r.record);
        if (!t) continue;
        const auto key = std::make_pair(t, key_of(r.record).dump());
        if (!newest.count(key)) order.push_back(key);
        const ResultRecord*& slot = newest[key];
        if (!slot || r.step.value_or(INT64_MIN) >= slot->step.value_or(INT64_MIN)) slot = &r;
      }
      for (const auto& key : order) take(*key.first, key_of(newest[key]->record), newest[key]->record);
    };
    each_newest(in_.niah_pooled,
                [](const json& r) { return json{{"quantity", "niah_rank_accuracy"}, {"method", r["method"]}, {"length", r["length"]}}; },
                [&](const Training& t, const json& keys, const json& r) {
                  series(t, keys).values[&t] = *number_at(r, {"rank_accuracy"});
                });
    each_newest(in_.alpha_star,
                [](const json& r) { return json{{"quantity", "alpha_star"}, {"family", r["family"]}, {"length", r["length"]}}; },
                [&](const Training& t, const json& keys, const json& r) {
                  auto& s = series(t, keys);
                  s.values[&t] = *number_at(r, {"best_factor"});
                  if (r.value("alpha_star_censored", json()).is_string()) ++s.censored;
                });
    each_newest(in_.niah_reach, [](const json& r) { return json{{"quantity", "longest_retrieving_length"}, {"method", r["method"]}}; },
                [&](const Training& t, const json& keys, const json& r) {
                  auto& s = series(t, keys);
                  if (const auto v = number_at(r, {"longest_retrieving_length"})) s.values[&t] = *v;
                  else ++s.censored;  // no length retrieved: counted, not averaged
                });
    each_newest(in_.kv,
                [](const json& r) {
                  if (r["policy"] == "df")
                    return json{{"quantity", "kv_window_mass"}, {"f", r.value("f", json())}};
                  return json{{"quantity", "kv_rel_loss_increase"}, {"policy", r["policy"]}, {"ratio", r["ratio"]}};
                },
                [&](const Training& t, const json& keys, const json& r) {
                  auto& s = series(t, keys);
                  if (keys["quantity"] == "kv_window_mass") {
                    const auto v = number_at(r, {"window_mass"});
                    if (!v) return;  // records before window_mass existed
                    s.values[&t] = *v;
                    if (const auto p = number_at(r, {"predicted_window_mass"})) s.predicted_values.push_back(*p);
                  } else {
                    s.values[&t] = *number_at(r, {"rel_loss_increase"});
                  }
                });
  }

  json summarise(const Group& g, const Series& s) const {
    const bool log_scale = s.keys["quantity"] == "alpha_star";
    std::vector<double> xs;
    json runs = json::array(), seeds = json::array(), values = json::array();
    for (const Training* t : g.trainings) {
      const auto it = s.values.find(t);
      if (it == s.values.end()) continue;
      xs.push_back(log_scale ? std::log2(it->second) : it->second);
      runs.push_back(t->run->label);
      seeds.push_back(t->seed ? json(*t->seed) : json());
      values.push_back(it->second);
    }
    json rec = {{"kind", "between_trainings"}, {"group", g.label}, {"theta", g.theta}};
    rec.update(s.keys);
    const int n = static_cast<int>(xs.size());
    rec.update({{"n_trainings", n}, {"n_trainings_in_group", g.trainings.size()}, {"runs", runs},
                {"seeds", seeds}, {"values", values}});
    if (s.censored > 0)
      rec["censored_count"] = s.censored;
    if (!s.predicted_values.empty()) {
      double p = 0;
      for (double v : s.predicted_values) p += v / s.predicted_values.size();
      rec["predicted_mean"] = p;
    }
    auto back = [&](double v) { return log_scale ? std::exp2(v) : v; };
    if (n == 0) {
      rec.update({{"mean", nullptr}, {"sd", nullptr}, {"ci95_lo", nullptr}, {"ci95_hi", nullptr}, {"interval", nullptr}});
      return rec;
    }
    double mean = 0;
    for (double x : xs) mean += x / n;
    double ss = 0;
    for (double x : xs) ss += (x - mean) * (x - mean);
    rec["mean"] = back(mean);
    if (log_scale) rec["scale"] = "log2 (geometric mean; interval on log2 α*)";
    if (n < 3) {
      rec.update({{"sd", n >= 2 ? json(std::sqrt(ss / (n - 1))) : json()}, {"ci95_lo", nullptr}, {"ci95_hi", nullptr},
                  {"interval", nullptr},
                  {"note", "fewer than 3 trainings: no between-training interval"}});
      return rec;
    }
    const double sd = std::sqrt(ss / (n - 1)), half = t_quantile_975(n - 1) * sd / std::sqrt(double(n));
    rec.update({{"sd", log_scale ? json() : json(sd)}, {"ci95_lo", back(mean - half)}, {"ci95_hi", back(mean + half)},
                {"interval", "t, df = n - 1"}});
    if (log_scale) rec["sd_log2"] = sd;
    if (s.censored > 0 && log_scale)
      rec["note"] = std::to_string(s.censored) + " of " + std::to_string(n) +
                    " α* at an end of the sweep: the mean and interval treat them at that end, so they are bounds";
    return rec;
  }
};

std::string cell(const json& v, const char* f = "%.3f") {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v.get<double>());
  return buf;
}

std::string keys_cell(const json& r) {
  std::string s;
  for (const char* k : {"protocol", "method", "family", "policy", "length", "ratio", "f"}) {
    if (!r.contains(k) || r[k].is_null()) continue;
    s += (s.empty() ? "" : ", ") + std::string(k) + " " + (r[k].is_string() ? r[k].get<std::string>() : cell(r[k], "%g"));
  }
  return s.empty() ? "-" : s;
}

}  // namespace

std::vector<json> between_training_records(const Inputs& in) { return Aggregator(in).records(); }

Table between_trainings_table(const std::vector<json>& records) {
  Table t{"between-trainings-table", "Across trainings (the unit of evidence)",
          "Runs that share a recipe except the training seed form one group. Per group and quantity: the number of "
          "trainings measured, their mean, and the 95% t-interval over trainings (df = n − 1); with fewer than 3 "
          "trainings no interval is given. α* is averaged on a log2 scale (geometric mean); when some α* sit at an "
          "end of the sweep the numbers are bounds (censored). A difference between θ means something only where "
          "these intervals separate. Also written as between_trainings.jsonl.",
          {"group", "quantity", "keys", "n", "mean", "95% t-interval", "values"},
          {false, false, false, true, true, true, false},
          {},
          ""};
  for (const auto& r : records) {
    const bool alpha = r["quantity"] == "alpha_star";
    const char* f = alpha ? "%.3g" : "%.3f";
    std::string values;
    for (const auto& v : r["values"]) values += (values.empty() ? "" : ", ") + cell(v, f);
    if (r.contains("censored_count"))
      values += " (" + r["censored_count"].dump() + (r["quantity"] == "longest_retrieving_length" ? " none" : " censored") + ")";
    const std::string interval = r["ci95_lo"].is_number() ? "[" + cell(r["ci95_lo"], f) + ", " + cell(r["ci95_hi"], f) + "]"
                                                          : r["n_trainings"].get<int>() < 3 ? "n < 3" : "-";
    t.rows.push_back({r["group"].get<std::string>(), r["quantity"].get<std::string>(), keys_cell(r),
                      r["n_trainings"].dump(), cell(r["mean"], f), interval, values});
  }
  return t;
}

}  // namespace ropelab::report
