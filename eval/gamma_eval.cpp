#include "eval/gamma_eval.h"

#include <torch/version.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <set>

#include "common/config_fields.h"
#include "common/error.h"
#include "common/io.h"
#include "common/progress.h"
#include "data/prepare.h"
#include "theory/gamma_record.h"
#include "eval/evaluation.h"
#include "train/checkpoint.h"

namespace ropelab::eval {
namespace fs = std::filesystem;

namespace {

// γ per curve in a list (layers, or heads of a layer), with R² and the
// normalised γ; null where a fit fails (too few points, or a zero A).
nlohmann::json fit_each(const std::vector<std::vector<double>>& curves, const fit::DecayCurve& whole,
                        const fit::FitOptions& base) {
  fit::FitOptions o = base;
  o.bootstrap_resamples = 200;  // per-layer CIs are indicative; the headline γ uses the full count
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < curves.size(); ++i) {
    try {
      const auto f = fit::fit_gamma({whole.distances, curves[i], {}, {}, whole.prompt_lengths}, o);
      out.push_back({{"index", i}, {"gamma", f.gamma}, {"R2", f.R2}, {"ci95_lo", f.ci95_lo}, {"ci95_hi", f.ci95_hi},
                     {"gamma_intrinsic", f.gamma_intrinsic}, {"A", curves[i]}});
    } catch (const Error& e) {
      out.push_back({{"index", i}, {"gamma", nullptr}, {"error", e.what()}, {"A", curves[i]}});
    }
  }
  return out;
}

std::string text_corpus_label(const GammaProtocol& p) { return p.corpus == "random" ? "random_tokens" : "real_text"; }

// γ of each layer type of a per-layer-attention model (full, sliding, nope):
// A(d) averaged over the layers of that type, fitted as the whole model's is
// (a sliding layer over the distances inside its window: beyond it A is 0 by
// construction). {"full": {"gamma": ..., "layers": [3, 7], ...}, "sliding": {...}}
nlohmann::json fit_per_layer_type(const model::ModelConfig& c, const DecayMeasurement& meas, const fit::FitOptions& fit) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& type : c.layer_types()) {
    std::vector<int64_t> layers;
    std::vector<double> mean(meas.curve.distances.size(), 0.0);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      if (c.layer_type(l) != type) continue;
      layers.push_back(l);
      for (size_t d = 0; d < mean.size(); ++d) mean[d] += meas.per_layer[size_t(l)][d];
    }
    for (auto& a : mean) a /= double(layers.size());
    fit::DecayCurve whole = meas.curve;
    if (type == "sliding") {  // the distances a sliding query can see
      fit::DecayCurve inside;
      for (size_t d = 0; d < whole.distances.size(); ++d)
        if (whole.distances[d] < double(c.sliding_window)) {
          inside.distances.push_back(whole.distances[d]);
          if (!whole.prompt_lengths.empty()) inside.prompt_lengths.push_back(whole.prompt_lengths[d]);
        }
      mean.resize(inside.distances.size());
      whole = inside;
    }
    auto fitted = fit_each({mean}, whole, fit).at(0);
    fitted.erase("index");
    fitted["layers"] = layers;
    fitted["distances"] = whole.distances;
    out[type] = fitted;
  }
  return out;
}

}  // namespace

const std::vector<config::Field<GammaEvalOptions>>& gamma_eval_fields() {
  using C = GammaEvalOptions;
  static const std::vector<config::Field<C>> fields = {
      {"T_eval", "T-eval", &C::T_eval, "fit", "T for γ_Padé (0: the largest fitted distance)",
       {[](const C& c) { return std::isfinite(c.T_eval) && c.T_eval >= 0; }, "must be > 0 (or 0: the largest fitted distance)"}},
      {"per_layer", "per-layer", &C::per_layer, "protocol", "γ per layer", {}, false, true},
  };
  return fields;
}

nlohmann::json gamma_options_json(const GammaEvalOptions& opt) {
  nlohmann::json j = config::to_json(opt.protocol, protocol_fields());
  j.update(config::to_json(opt.fit, fit::fit_fields()));
  j.update(config::to_json(opt, gamma_eval_fields()));
  return j;
}

void check_gamma_options(const GammaEvalOptions& opt) {
  check_protocol(opt.protocol);
  config::check_flags(opt.fit, fit::fit_fields());
  config::check_flags(opt, gamma_eval_fields());
}

nlohmann::json eval_gamma_checkpoint(const std::string& ckpt_path, const GammaEvalOptions& opt) {
  check_gamma_options(opt);
  auto opened = open_model(ckpt_path, opt.open);
  auto& m = opened.model;
  const auto& p = opt.protocol;
  const auto meas = measure_attention_decay(m, p, opt.fit.fit_min_d);

  MeasurementInfo info;
  info.model_id = opened.model_id;
  info.corpus = text_corpus_label(p);
  info.n_prompts_per_distance = static_cast<int>(p.prompts * p.seeds.size());
  if (opt.T_eval > 0) info.T_eval = opt.T_eval;
  info.source = ckpt_path;
  info.protocol = p.name;
  if (std::count_if(meas.curve.distances.begin(), meas.curve.distances.end(),
                    [&](double d) { return d >= opt.fit.fit_min_d; }) >= 2)
    info.uniform_baseline_gamma = fit::uniform_baseline_gamma(meas.curve, opt.fit.fit_min_d);
  nlohmann::json rec;
  try {
    rec = make_gamma_record(opened.arch(), meas.curve, fit::fit_gamma(meas.curve, opt.fit), info);
  } catch (const fit::InsufficientPoints& why) {
    rec = make_insufficient_gamma_record(opened.arch(), meas.curve, why, info);
  }
  rec["tokens_seen"] = opened.state.at("tokens_seen");
  auto& r = rec["ropelab"];
  r["context"] = meas.context;
  r["skipped_distances"] = nlohmann::json::array();
  r["skipped"] = nlohmann::json::array();
  for (const auto& s : meas.skipped) {
    r["skipped_distances"].push_back(s.distance);
    r["skipped"].push_back({{"distance", s.distance}, {"prompt_length", s.prompt_length}, {"reason", s.reason}});
  }
  r["prompts_per_seed"] = p.prompts;
  r["prompt_tail"] = p.name == "taf" ? nlohmann::json(p.tail) : nlohmann::json();
  r["prompt_length"] = p.name == "fixed" ? nlohmann::json(prompt_length(p, meas.context, 0)) : nlohmann::json("d+tail");
  r["seeds"] = p.seeds;
  r["train_config"] = opened.state.at("config");
  r["versions"] = versions();  // (kept here too: records never lose a field)
  r["options"] = gamma_options_json(opt);
  if (opt.per_layer || p.per_head) r["per_layer"] = fit_each(meas.per_layer, meas.curve, opt.fit);
  if (!m->cfg.layer_pattern.empty()) r["per_layer_type"] = fit_per_layer_type(m->cfg, meas, opt.fit);
  if (p.per_head) {
    r["per_head"] = nlohmann::json::array();
    for (const auto& heads : meas.per_head) r["per_head"].push_back(fit_each(heads, meas.curve, opt.fit));
  }
  RecordWriter records(opt.out, opened.provenance());
  records.write(std::move(rec));
  return records.take().front();
}

namespace {

// One checkpoint of a sweep, and which records of `out` belong to the sweep.
struct SweepPoint {
  int64_t step;
  std::string path;
};

// Measures each point whose step `out` does not hold yet (a killed sweep
// resumes where it stopped), then returns the sweep's records by step.
std::vector<nlohmann::json> sweep(const std::vector<SweepPoint>& points,
                                  const std::function<bool(const nlohmann::json&)>& mine, const GammaEvalOptions& opt) {
  // A record of this protocol at this step is done (one without a protocol predates them: taf).
  const auto this_protocol = [&](const nlohmann::json& rec) {
    const auto& p = rec.contains("measurement") ? rec["measurement"].value("protocol", nlohmann::json()) : nlohmann::json();
    return (p.is_string() ? p.get<std::string>() : std::string("taf")) == opt.protocol.name;
  };
  std::set<int64_t> done;
  for (const auto& rec : io::read_jsonl(opt.out))
    if (mine(rec) && this_protocol(rec) && rec.at("step").is_number_integer()) done.insert(rec.at("step").get<int64_t>());
  Progress progress("gamma", static_cast<int64_t>(points.size()));
  int64_t i = 0;
  for (const auto& p : points) {
    ++i;
    if (done.count(p.step)) continue;
    const auto rec = eval_gamma_checkpoint(p.path, opt);
    const auto& g = rec["measurement"]["gamma"];
    char detail[96];
    std::snprintf(detail, sizeof detail, "step %lld (%s): gamma %s", static_cast<long long>(p.step),
                  opt.protocol.name.c_str(), g.is_number() ? std::to_string(g.get<double>()).substr(0, 5).c_str() : "-");
    progress.update(i, detail);
  }
  std::vector<nlohmann::json> out;
  for (const auto& rec : io::read_jsonl(opt.out))
    if (mine(rec) && this_protocol(rec)) out.push_back(rec);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a["step"] < b["step"]; });
  return out;
}

}  // namespace

std::vector<nlohmann::json> eval_gamma_run(const std::string& run_dir, const GammaEvalOptions& opt) {
  check_gamma_options(opt);  // before the sweep, which may find every checkpoint measured
  if (opt.out.empty()) throw Error("--out is required with --run (it is how a sweep resumes)");
  const auto entries = train::read_manifest(run_dir);
  if (entries.empty()) throw Error(run_dir + ": no checkpoints listed in checkpoints/manifest.json");
  std::vector<SweepPoint> points;
  for (const auto& e : entries) points.push_back({e.step, rundir::checkpoint_path(run_dir, e.file)});
  return sweep(points, [&](const nlohmann::json& rec) {
    return rec.contains("checkpoint") &&
           fs::path(rundir::run_of_checkpoint(rec["checkpoint"].get<std::string>())) == fs::path(run_dir);
  }, opt);
}

std::vector<nlohmann::json> eval_gamma_hf_run(const std::string& dir, const GammaEvalOptions& opt) {
  check_gamma_options(opt);
  if (opt.out.empty()) throw Error("--out is required with --hf-run (it is how a sweep resumes)");
  if (!fs::is_directory(dir)) throw Error(dir + ": not a directory (expected a folder of checkpoint folders)");
  std::vector<SweepPoint> points;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_directory() || !io::exists(entry.path().string() + "/config.json")) continue;
    const std::string name = entry.path().filename().string();
    const int64_t step = step_of_folder(name);
    if (step < 0)
      throw Error(entry.path().string() + ": a checkpoint folder whose name states no step (expected e.g. step1000)");
    points.push_back({step, entry.path().string()});
  }
  if (points.empty()) throw Error(dir + ": no sub-folder with a config.json (expected step1000/, step2000/, ...)");
  std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  for (size_t i = 1; i < points.size(); ++i)
    if (points[i].step == points[i - 1].step)
      throw Error(dir + ": " + points[i - 1].path + " and " + points[i].path + " state the same step");
  fs::path root = fs::absolute(dir).lexically_normal();
  if (!root.has_filename()) root = root.parent_path();  // "runs/pythia/" names the same folder as "runs/pythia"
  return sweep(points, [&](const nlohmann::json& rec) {
    if (!rec.contains("checkpoint") || !rec["checkpoint"].is_string()) return false;
    return fs::absolute(rec["checkpoint"].get<std::string>()).lexically_normal().parent_path() == root;
  }, opt);
}

}  // namespace ropelab::eval
