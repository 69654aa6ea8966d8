// `ropelab report` on a small study written here: a run directory, its γ
// records (out of step order), a `fit gamma` record one folder down, and a
// file of other records. The table's values are recomputed here from the
// planted curves (own OLS, own γ_Padé formula); the page is drawn in headless
// Chromium, which must report every chart drawn.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/io.h"
#include "theory/fit.h"
#include "theory/gamma_record.h"
#include "report/report.h"
#include "report/between_trainings.h"
#include "report/report_charts.h"
#include "report/report_tables.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
namespace report = ropelab::report;

namespace {

const std::vector<double> kRunD = {10, 20, 30, 50, 70, 100, 200};
const std::vector<double> kFitD = {10, 20, 30, 50, 100, 200, 500, 1000, 2000};
const std::vector<std::string> kChartIds = {"loss-curves",  "gamma-fit",            "gamma-flow", "gamma-vs-theta",
                                            "niah-heatmap", "perplexity-vs-length", "kv-quality"};
const size_t kNCharts = kChartIds.size();
constexpr double kUniform = 0.603;

std::string fmt(double v, const char* f = "%.4f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A(d) = a·d^−g with a few percent of deterministic wiggle.
std::vector<double> planted(const std::vector<double>& ds, double a, double g, int salt) {
  std::vector<double> A;
  for (size_t i = 0; i < ds.size(); ++i) A.push_back(a * std::pow(ds[i], -g) * (1 + 0.04 * std::sin(1.3 * i + salt)));
  return A;
}

// What the summary should say about a curve, computed here: OLS of log A on
// log d over d ≥ 30, and γ_Padé = (2θ − T√2)/(2θ + T√2) at T = the largest d.
struct Expected {
  double gamma, R2, pade, rel;
};
Expected expected(const std::vector<double>& ds, const std::vector<double>& A, double theta) {
  std::vector<double> x, y;
  for (size_t i = 0; i < ds.size(); ++i)
    if (ds[i] >= 30) x.push_back(std::log(ds[i])), y.push_back(std::log(A[i]));
  const double n = x.size();
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i)
    sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx), syy += (y[i] - my) * (y[i] - my);
  const double slope = sxy / sxx, R2 = sxy * sxy / (sxx * syy);
  const double T = ds.back(), r2 = std::sqrt(2.0);
  const double pade = (2 * theta - T * r2) / (2 * theta + T * r2);
  return {-slope, R2, pade, std::fabs(-slope - pade) / std::fabs(pade)};
}

json gamma_record(const json& arch, const std::vector<double>& ds, const std::vector<double>& A,
                  const std::string& model_id) {
  ropelab::fit::DecayCurve c;
  c.distances = ds;
  c.A = A;
  ropelab::fit::FitOptions opt;
  opt.bootstrap_resamples = 200;
  ropelab::MeasurementInfo info;
  info.model_id = model_id;
  info.source = "test";
  return ropelab::make_gamma_record(arch, c, ropelab::fit::fit_gamma(c, opt), info);
}

std::string table_row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const auto& c : cells) s += " " + c + " |";
  return s;
}

std::string ci(const json& rec) {
  return "[" + fmt(rec["measurement"]["gamma_ci95_lo"].get<double>()) + ", " +
         fmt(rec["measurement"]["gamma_ci95_hi"].get<double>()) + "]";
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = 0; (p = hay.find(needle, p)) != std::string::npos; p += needle.size()) ++n;
  return n;
}

std::string error_of(const std::vector<std::string>& paths, const report::Options& opt) {
  try {
    report::write_report(paths, opt);
  } catch (const ropelab::Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string find_chromium() {
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string cand = dirs.substr(start, end - start) + "/chromium";
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return "";
}

class ReportTest : public ::testing::Test {
 protected:
  std::string root, study, out;
  json run_final, fit_rec, fit_no_theta;
  Expected run_exp{}, fit_exp{};

  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root = ::testing::TempDir() + "ropelab_report_" + std::to_string(::getpid()) + "_" + info->name();
    fs::remove_all(root);
    study = root + "/study";
    out = root + "/out";
    const std::string run = study + "/alpha";
    ropelab::io::make_dirs(run + "/checkpoints");
    ropelab::io::make_dirs(study + "/fits");

    ropelab::io::write_json_atomic(run + "/config.json",
                                   {{"model", {{"rope_theta", 10000.0}, {"T_train", 256}}}, {"max_steps", 30}});
    std::string metrics;
    for (int s = 1; s <= 30; ++s) {
      json m = {{"step", s}, {"loss", 8.0 - 0.1 * s}, {"lr", 1e-3}};
      if (s % 10 == 0) m["val_loss"] = 8.2 - 0.1 * s;
      metrics += m.dump() + "\n";
    }
    ropelab::io::write_atomic(run + "/metrics.jsonl", metrics);
    json manifest = {{"checkpoints", json::array()}};
    for (int s : {0, 10, 20})
      manifest["checkpoints"].push_back({{"file", "step_" + fmt(s, "%08.0f") + ".pt"}, {"step", s}});
    ropelab::io::write_json_atomic(run + "/checkpoints/manifest.json", manifest);

    // The run's γ records, step 20 (the final one) written before step 10.
    const json arch = {{"rope_theta", 10000.0}, {"T_train", 256}, {"n_params_M", 0.5}};
    std::string lines;
    for (auto [step, g] : std::vector<std::pair<int, double>>{{0, 0.60}, {20, 0.85}, {10, 0.70}}) {
      const auto A = planted(kRunD, 0.2, g, step);
      json rec = gamma_record(arch, kRunD, A, "ropelab:alpha");
      rec["step"] = step;
      rec["checkpoint"] = run + "/checkpoints/step_" + fmt(step, "%08.0f") + ".pt";
      rec["ropelab"]["uniform_baseline_gamma"] = kUniform;
      if (step == 20) run_final = rec, run_exp = expected(kRunD, A, 10000);
      lines += rec.dump() + "\n";
    }
    ropelab::io::write_atomic(study + "/gamma.jsonl", lines);

    // A `fit gamma` record (no step, no checkpoint), one folder down.
    const auto A = planted(kFitD, 0.3, 0.9, 7);
    fit_rec = gamma_record({{"rope_theta", 500000.0}}, kFitD, A, "pythia-70m-taf");
    fit_exp = expected(kFitD, A, 500000);
    ropelab::io::write_atomic(study + "/fits/taf.jsonl", fit_rec.dump() + "\n");

    // Given directly: a fit record without θ, and records of other kinds.
    fit_no_theta = gamma_record(json::object(), kFitD, planted(kFitD, 0.3, 0.7, 3), "csv-curve");
    ropelab::io::write_atomic(root + "/other.jsonl", fit_no_theta.dump() + "\n" + eval_records() +
                                                         R"({"kind":"niah","length":512,"depth":0.5,"score":1})"
                                                         "\n"
                                                         R"({"kind":"ruler","length":1024,"score":0})"
                                                         "\n"
                                                         R"({"kind":"ruler","length":2048,"score":0})"
                                                         "\n"
                                                         R"({"foo":1})"
                                                         "\n");
  }
  void TearDown() override { fs::remove_all(root); }

  // `ropelab eval niah|perplexity|kv` records: NIAH 2 methods × 2 lengths × 2 depths
  // (one cell also at an older step), perplexity 2 methods × 3 lengths, KV two
  // policies at 3 ratios and df at 2 values of f, and one kv_summary.
  static std::string eval_records() {
    const json common = {{"model_id", "ropelab:test"}, {"checkpoint", "x/run/checkpoints/step_00000030.pt"},
                         {"step", 30}, {"arch", {{"T_train", 256}}}};
    std::string s;
    auto add = [&](json r) {
      r.update(common);
      s += r.dump() + "\n";
    };
    for (const char* method : {"none", "yarn"})
      for (int len : {256, 1024})
        for (double depth : {0.0, 1.0})
          add({{"kind", "niah"}, {"method", method}, {"length", len}, {"depth", depth}, {"rank_accuracy", 0.5},
               {"rank_ci95", {0.2, 0.8}}, {"exact_accuracy", 0.3}, {"exact_ci95", {0.1, 0.6}},
               {"rank_chance", 0.1}, {"trials", 10}});
    json old_step = {{"kind", "niah"}, {"method", "none"}, {"length", 256}, {"depth", 0.0}, {"rank_accuracy", 0.9}};
    old_step.update(common);
    old_step["step"] = 10;
    s += old_step.dump() + "\n";
    for (const char* method : {"none", "yarn"})
      for (int len : {256, 512, 1024})
        add({{"kind", "perplexity"}, {"method", method}, {"length", len}, {"perplexity", 100.0 + len / 8},
             {"nll", std::log(100.0 + len / 8)}, {"windows", 4}});
    for (const char* policy : {"full", "recent"})
      for (double ratio : {0.25, 0.5, 0.75})
        add({{"kind", "kv"}, {"policy", policy}, {"ratio", ratio}, {"budget", 224 * ratio},
             {"rel_loss_increase", policy[0] == 'f' ? 0.0 : 0.02 / ratio}, {"retained_mass", ratio + 0.2},
             {"niah_rank_accuracy", policy[0] == 'f' ? 0.9 : ratio}, {"niah_rank_accuracy_full", 0.9}});
    for (double f : {0.8, 0.9})
      add({{"kind", "kv"}, {"policy", "df"}, {"f", f}, {"ratio", f - 0.3}, {"rel_loss_increase", 0.01},
           {"retained_mass", f - 0.05}, {"predicted_mass", f}, {"D_f_discrete", 100}, {"D_f_continuum", 101.5}});
    add({{"kind", "kv_summary"}, {"policy", "recent"}, {"smallest_ratio_within_epsilon", 0.25}, {"epsilon", 0.01},
         {"D_f", {{"0.80", {{"discrete", 107}, {"continuum", 111.3}}}}}});
    return s;
  }

  report::Written write(bool svg = true) {
    report::Options opt;
    opt.out_dir = out;
    opt.svg = svg;
    return report::write_report({study, root + "/other.jsonl"}, opt);
  }
};

TEST_F(ReportTest, WritesPageTableAndFigures) {
  const report::Written w = write();
  EXPECT_EQ(w.n_charts, static_cast<int>(kNCharts));

  // The page: one container per chart, the three libraries inlined, nothing fetched.
  const std::string html = ropelab::io::read_file(out + "/report.html");
  EXPECT_EQ(count(html, "class=\"chart\""), kNCharts);
  for (const auto& id : kChartIds) EXPECT_EQ(count(html, "id=\"chart-" + id + "\""), 1u) << id;
  EXPECT_NE(html.find("id=\"summary-table\""), std::string::npos);
  const std::string nm = report::default_node_modules();
  for (const char* bundle : {"/vega/build/vega.min.js", "/vega-lite/build/vega-lite.min.js",
                             "/vega-embed/build/vega-embed.min.js"})
    EXPECT_NE(html.find(ropelab::io::read_file(nm + bundle)), std::string::npos) << bundle << " not inlined";
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);

  // The table: the run's final checkpoint (step 20, written before step 10), the
  // fit-gamma record, and the θ-less one.
  const std::string md = ropelab::io::read_file(out + "/summary.md");
  // The run's records predate protocols (taf); a fit-gamma record names none. Neither has prompt lengths: no γ intrinsic.
  EXPECT_NE(md.find(table_row({"alpha", "20", "taf", "10000", "200", fmt(run_exp.gamma), ci(run_final), "-", "-",
                               fmt(run_exp.R2), fmt(run_exp.pade), fmt(run_exp.rel * 100, "%.1f") + "%", fmt(kUniform)})),
            std::string::npos)
      << md;
  EXPECT_NE(md.find(table_row({"pythia-70m-taf", "-", "-", "500000", "2000", fmt(fit_exp.gamma), ci(fit_rec), "-", "-",
                               fmt(fit_exp.R2), fmt(fit_exp.pade), fmt(fit_exp.rel * 100, "%.1f") + "%", "-"})),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| csv-curve | - | - | - | 2000 |"), std::string::npos) << md;
  EXPECT_EQ(count(md, "\n| alpha |"), 1u);
  // Notes: the other kinds counted, the θ-less record named.
  EXPECT_NE(md.find("2 × \"ruler\""), std::string::npos) << md;
  EXPECT_NE(md.find("1 × \"niah (without rank_accuracy)\""), std::string::npos) << md;
  EXPECT_NE(md.find("1 × \"record with keys foo\""), std::string::npos) << md;
  EXPECT_EQ(md.find("\"kv\""), std::string::npos) << "charted kinds are not listed as unknown";
  // The KV summary: policy and smallest ratio within ε.
  EXPECT_NE(md.find("| ropelab:test | 30 | recent | 0.25 | 0.01 |"), std::string::npos) << md;
  EXPECT_NE(html.find("id=\"kv-summary-table\""), std::string::npos);
  EXPECT_NE(md.find("csv-curve has no θ"), std::string::npos) << md;
  EXPECT_NE(html.find("2 × &quot;ruler&quot;"), std::string::npos);

  // Figures: a spec each, and an SVG each where vl2svg is installed.
  const bool have_vl2svg = fs::exists(nm + "/.bin/vl2svg") && std::system("command -v node >/dev/null 2>&1") == 0;
  for (const auto& id : kChartIds) {
    EXPECT_TRUE(fs::exists(out + "/figures/" + id + ".vl.json")) << id;
    if (have_vl2svg) {
      ASSERT_TRUE(fs::exists(out + "/figures/" + id + ".svg")) << id;
      EXPECT_EQ(ropelab::io::read_file(out + "/figures/" + id + ".svg").rfind("<svg", 0), 0u) << id;
    }
  }
  const json data = ropelab::io::read_json(out + "/report-data.json");
  EXPECT_EQ(data["charts"].size(), kNCharts);
  EXPECT_EQ(data["summary"].size(), 3u);
  EXPECT_DOUBLE_EQ(data["summary"][0]["gamma"].get<double>(), run_final["measurement"]["gamma"].get<double>());
}

TEST_F(ReportTest, ChartDataComesFromTheRecords) {
  const report::Inputs in = report::collect_inputs({study, root + "/other.jsonl"});
  ASSERT_EQ(in.runs.size(), 1u);
  EXPECT_EQ(in.runs[0].label, "alpha");
  ASSERT_EQ(in.gamma.size(), 5u);
  const auto charts = report::build_charts(in);
  ASSERT_EQ(in.niah.size(), 9u);
  ASSERT_EQ(in.perplexity.size(), 6u);
  ASSERT_EQ(in.kv.size(), 8u);
  ASSERT_EQ(in.kv_summary.size(), 1u);
  ASSERT_EQ(charts.size(), kNCharts);
  auto chart = [&](const std::string& id) {
    for (const auto& c : charts)
      if (c.id == id) return c;
    return report::Chart{};
  };
  auto layer_values = [&](const std::string& id, size_t layer) {
    for (const auto& c : charts)
      if (c.id == id) return c.spec["layer"][layer]["data"]["values"];
    return json();
  };
  // Loss: 30 train points and 3 val_loss points.
  EXPECT_EQ(layer_values("loss-curves", 0).size(), 30u);
  EXPECT_EQ(layer_values("loss-curves", 1).size(), 3u);
  // γ-flow: the three checkpoints, and rules at γ_Padé and the uniform baseline.
  EXPECT_EQ(layer_values("gamma-flow", 1).size(), 3u);
  const json rules = layer_values("gamma-flow", 2);
  ASSERT_EQ(rules.size(), 2u);
  for (const auto& r : rules) {
    if (r["rule"] == "γ_Padé") EXPECT_NEAR(r["value"].get<double>(), run_exp.pade, 1e-12);
    else EXPECT_EQ(r["value"].get<double>(), kUniform);
  }
  // γ vs θ: the run's final checkpoint and the fit record (the θ-less one is not
  // drawn), under one Padé curve per T_eval (200 and 2000).
  const json pts = layer_values("gamma-vs-theta", 2);
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_EQ(pts[0]["series"], "alpha");
  EXPECT_EQ(pts[0]["step"], 20);
  EXPECT_EQ(pts[1]["series"], "pythia-70m-taf");
  const json curve = layer_values("gamma-vs-theta", 0);
  std::set<std::string> curves;
  for (const auto& c : curve) curves.insert(c["curve"].get<std::string>());
  EXPECT_EQ(curves, (std::set<std::string>{"γ_Padé(θ, T=200)", "γ_Padé(θ, T=2000)"}));
  for (const auto& c : curve)
    if (c["curve"] == "γ_Padé(θ, T=2000)") {
      const double th = c["theta"], r2 = std::sqrt(2.0);
      EXPECT_NEAR(c["gamma"].get<double>(), (2 * th - 2000 * r2) / (2 * th + 2000 * r2), 1e-12);
    }
  // γ fit: the planted points of the final checkpoint and both fit records.
  EXPECT_EQ(layer_values("gamma-fit", 0).size(), kRunD.size() + 2 * kFitD.size());

  // NIAH: 8 cells (the step-10 record replaced by step 30), a panel per method, chance in the caption.
  const report::Chart niah = chart("niah-heatmap");
  const json cells = niah.spec["data"]["values"];
  ASSERT_EQ(cells.size(), 8u);
  for (const auto& c : cells) {
    EXPECT_EQ(c["rank_accuracy"], 0.5);
    EXPECT_EQ(c["rank_lo"], 0.2);
    EXPECT_EQ(c["exact_hi"], 0.6);
  }
  EXPECT_EQ(niah.spec["facet"]["field"], "method");  // one model: methods wrap, four to a row
  EXPECT_EQ(niah.spec["columns"], 4);
  EXPECT_EQ(niah.spec["spec"]["encoding"]["color"]["scale"]["domain"], json({0, 1}));
  EXPECT_NE(niah.caption.find("chance level (rank_chance) = 0.1"), std::string::npos) << niah.caption;
  // Perplexity: 6 points on log axes and a rule at the records' T_train.
  const report::Chart ppl = chart("perplexity-vs-length");
  EXPECT_EQ(ppl.spec["layer"][0]["data"]["values"].size(), 6u);
  EXPECT_EQ(ppl.spec["layer"][0]["encoding"]["y"]["scale"]["type"], "log");
  ASSERT_EQ(ppl.spec["layer"].size(), 2u);
  EXPECT_EQ(ppl.spec["layer"][1]["data"]["values"], json::parse(R"([{"T_train":256.0,"rule":"T_train"}])"));
  EXPECT_EQ(ppl.spec["layer"][1]["encoding"]["x"]["field"], "T_train");  // the field its data has
  // KV: 6 policy points (%), 2 df points labelled f, and measured + predicted mass for each;
  // retrieval on the compressed cache for the 6 policy points, with chance and full-cache rules.
  const json kv = chart("kv-quality").spec["vconcat"];
  ASSERT_EQ(kv.size(), 3u);
  EXPECT_EQ(kv[2]["layer"][0]["data"]["values"].size(), 6u);
  EXPECT_EQ(kv[2]["layer"].back()["data"]["values"], json::parse(R"js([{"which":"chance (0.1)","y":0.1},{"which":"full cache","y":0.9}])js"));
  EXPECT_EQ(kv[0]["layer"][0]["data"]["values"].size(), 6u);
  const json df = kv[0]["layer"][1]["data"]["values"];
  ASSERT_EQ(df.size(), 2u);
  EXPECT_EQ(df[0]["label"], "f=0.8");
  EXPECT_DOUBLE_EQ(df[0]["rel_pct"].get<double>(), 1.0);
  const json mass = kv[1]["layer"][1]["data"]["values"];
  ASSERT_EQ(mass.size(), 4u);
  EXPECT_DOUBLE_EQ(mass[1]["mass"].get<double>(), 0.8);
  EXPECT_NE(mass[0]["which"], mass[1]["which"]);
}

// The tables pool and place the numbers as hand-computed here: NIAH pooled
// over depths weighted by trials (newest step only), KV retrieval per policy
// and kept ratio with the loss change, the D_f rows, budgets without `full`.
TEST_F(ReportTest, TablesPoolAndPlaceTheRecords) {
  const std::string file = root + "/tables.jsonl";
  std::string s;
  auto add = [&](json r) { r["model_id"] = "ropelab:m"; s += r.dump() + "\n"; };
  // length 128: depth 0 → 0.4 over 10 trials, depth 1 → 0.8 over 30: (4 + 24) / 40 = 0.70;
  // exact 0.1 and 0.5: (1 + 15) / 40 = 0.40. Length 256: one depth, 0.25, no generation.
  add({{"kind", "niah"}, {"step", 50}, {"method", "ntk:alpha_opt"}, {"length", 128}, {"depth", 0.0}, {"trials", 10},
       {"rank_accuracy", 0.4}, {"exact_accuracy", 0.1}, {"rank_chance", 0.1}});
  add({{"kind", "niah"}, {"step", 50}, {"method", "ntk:alpha_opt"}, {"length", 128}, {"depth", 1.0}, {"trials", 30},
       {"rank_accuracy", 0.8}, {"exact_accuracy", 0.5}, {"rank_chance", 0.1}});
  add({{"kind", "niah"}, {"step", 50}, {"method", "ntk:alpha_opt"}, {"length", 256}, {"depth", 0.5}, {"trials", 20},
       {"rank_accuracy", 0.25}, {"rank_chance", 0.1}});
  add({{"kind", "niah"}, {"step", 40}, {"method", "ntk:alpha_opt"}, {"length", 128}, {"depth", 0.0}, {"trials", 10},
       {"rank_accuracy", 0.0}, {"rank_chance", 0.1}});  // an older step of a cell measured at 50: not pooled
  add({{"kind", "niah"}, {"step", 40}, {"method", "none"}, {"length", 128}, {"depth", 0.5}, {"trials", 20},
       {"rank_accuracy", 1.0}, {"rank_chance", 0.1}});  // measured only at step 40: its own row
  for (double ratio : {0.5, 0.25})
    add({{"kind", "kv"}, {"step", 50}, {"policy", "snapkv"}, {"ratio", ratio}, {"rel_loss_increase", 0.125 * ratio},
         {"niah_rank_accuracy", ratio + 0.3}, {"niah_rank_accuracy_full", 0.95}});
  add({{"kind", "kv"}, {"step", 50}, {"policy", "full"}, {"ratio", 0.5}, {"rel_loss_increase", 0.0}});
  add({{"kind", "kv"}, {"step", 50}, {"policy", "df"}, {"ratio", 0.6}, {"rel_loss_increase", -0.02}, {"f", 0.9},
       {"gamma", 0.75}, {"context", 112}, {"D_f_discrete", 74}, {"D_f_continuum", 76.33}, {"budget", 78},
       {"retained_mass", 0.7919}, {"niah_rank_accuracy", 0.8}});
  for (const char* policy : {"full", "tova"})
    add({{"kind", "kv_summary"}, {"step", 50}, {"policy", policy}, {"smallest_ratio_within_epsilon", 0.5}, {"epsilon", 0.01}});
  add({{"kind", "kv_summary"}, {"step", 50}, {"policy", "keynorm"}, {"smallest_ratio_within_epsilon", nullptr}, {"epsilon", 0.01}});
  // Query mixtures: layer 0 with two KV heads, layer 1 with one (the other head's cell is "-").
  add({{"kind", "query_gmm"}, {"step", 50}, {"layer", 0}, {"kv_head", 1}, {"best_K", 4}, {"delta_BIC_vs_K1", 2139.6}});
  add({{"kind", "query_gmm"}, {"step", 50}, {"layer", 0}, {"kv_head", 0}, {"best_K", 1}, {"delta_BIC_vs_K1", 0.0}});
  add({{"kind", "query_gmm"}, {"step", 50}, {"layer", 1}, {"kv_head", 0}, {"best_K", 8}, {"delta_BIC_vs_K1", 9402.4}});
  s += R"({"kind":"pilot_stage","stage":"train","theta":1000000.0,"seconds":3725.4,"exit_code":0})" "\n";
  s += R"({"kind":"pilot_stage","stage":"niah","theta":100.0,"seed":7,"seconds":61,"exit_code":0})" "\n";
  ropelab::io::write_atomic(file, s);

  const auto in = report::collect_inputs({file});
  const auto tables = report::build_tables(in, report::summary_rows(in));
  auto table = [&](const std::string& id) {
    for (const auto& t : tables)
      if (t.id == id) return t;
    ADD_FAILURE() << "no table " << id;
    return report::Table{};
  };
  const auto niah = table("niah-table");
  EXPECT_EQ(niah.columns, (std::vector<std::string>{"model", "step", "task", "method", "128", "256"}));
  ASSERT_EQ(niah.rows.size(), 2u);
  EXPECT_EQ(niah.rows[0], (std::vector<std::string>{"ropelab:m", "50", "passkey", "ntk:alpha_opt", "0.70 (0.40)", "0.25"}));
  EXPECT_EQ(niah.rows[1], (std::vector<std::string>{"ropelab:m", "40", "passkey", "none", "1.00", "-"}));
  EXPECT_NE(niah.caption.find("10 candidates (chance 0.1)"), std::string::npos) << niah.caption;

  const auto kv = table("kv-retrieval-table");
  EXPECT_EQ(kv.columns, (std::vector<std::string>{"model", "step", "policy", "full cache", "keep 0.25", "keep 0.5"}));
  ASSERT_EQ(kv.rows.size(), 1u);  // full and df are not rows
  EXPECT_EQ(kv.rows[0], (std::vector<std::string>{"ropelab:m", "50", "snapkv", "0.95", "0.55 (+3.1%)", "0.80 (+6.2%)"}));

  const auto df = table("kv-df-table");
  ASSERT_EQ(df.rows.size(), 1u);
  EXPECT_EQ(df.rows[0], (std::vector<std::string>{"ropelab:m", "50", "0.750", "112", "0.9", "74", "76.3", "78", "-", "-",
                                                  "-", "0.792", "-", "-2.0%", "0.80"}));
  const auto budgets = table("kv-summary-table");
  ASSERT_EQ(budgets.rows.size(), 2u);  // not the full cache
  EXPECT_EQ(budgets.rows[0][2], "tova");
  EXPECT_EQ(budgets.rows[1], (std::vector<std::string>{"ropelab:m", "50", "keynorm", "none", "0.01"}));  // none within ε

  const auto gmm = table("query-gmm-table");
  EXPECT_EQ(gmm.columns, (std::vector<std::string>{"model", "step", "layer", "KV head 0", "KV head 1"}));
  ASSERT_EQ(gmm.rows.size(), 2u);
  EXPECT_EQ(gmm.rows[0], (std::vector<std::string>{"ropelab:m", "50", "0", "1 (0)", "4 (2140)"}));
  EXPECT_EQ(gmm.rows[1], (std::vector<std::string>{"ropelab:m", "50", "1", "8 (9402)", "-"}));

  const auto stages = table("stages-table");
  ASSERT_EQ(stages.rows.size(), 2u);
  EXPECT_EQ(stages.rows[0], (std::vector<std::string>{"1e6", "train", "62 min 05 s", "0"}));
  EXPECT_EQ(stages.rows[1], (std::vector<std::string>{"100 seed 7", "niah", "1 min 01 s", "0"}));
  EXPECT_TRUE(in.unknown.empty());  // the stage log is not an unknown kind

  const auto summary = table("summary-table");  // no γ records: the section says so
  EXPECT_TRUE(summary.rows.empty());
  EXPECT_EQ(summary.when_empty, "(no γ records)");
}

// Trainings are the unit of evidence: the runs of a θ that differ only in
// their seed form one group, and each quantity gets the mean over trainings
// and a 95% t-interval, computed here by hand. θ = 1e4, three trainings: γ
// 0.5, 0.7, 0.9 → mean 0.7, sd 0.2, t(2) = 4.303, half-width 4.303·0.2/√3 =
// 0.49688; NIAH 0.6, 0.8, 1.0 → the same shape around 0.8; α* 4, 8, ≥16 on
// log2 (2, 3, 4): geometric mean 8, interval 2^(3 ∓ 2.48432) = [1.4298,
// 44.763], one censored. θ = 1e6, two trainings: the count, no interval.
TEST_F(ReportTest, BetweenTrainingIntervalsPerTheta) {
  const std::string study = root + "/seed-study";
  auto add_run = [&](double theta, const std::string& tl, int seed, double gamma, double niah, double alpha,
                     bool censored) {
    const std::string run = study + "/theta-" + tl + "-seed-" + std::to_string(seed);
    fs::create_directories(run + "/checkpoints");
    ropelab::io::write_atomic(run + "/config.json",
                              json({{"seed", seed}, {"max_steps", 100}, {"threads", seed},
                                    {"model", {{"rope_theta", theta}, {"T_train", 128}, {"n_layers", 4}, {"d_model", 128}}}})
                                  .dump());
    ropelab::io::write_atomic(run + "/metrics.jsonl", json({{"step", 100}, {"loss", 3.0}}).dump() + "\n");
    const std::string ckpt = run + "/checkpoints/step_00000100.pt";
    const std::string model = "ropelab:theta-" + tl + "-seed-" + std::to_string(seed);
    auto g = gamma_record({{"rope_theta", theta}}, kRunD, planted(kRunD, 0.3, gamma, seed), model);
    g["measurement"]["gamma"] = gamma;  // the value under test, exactly
    g["measurement"]["protocol"] = "taf";
    g["step"] = 100, g["checkpoint"] = ckpt;
    ropelab::io::append_jsonl(run + "/gamma.jsonl", g);
    ropelab::io::append_jsonl(run + "/niah.jsonl", {{"kind", "niah_pooled"}, {"model_id", model}, {"checkpoint", ckpt},
                                                   {"step", 100}, {"method", "none"}, {"length", 256},
                                                   {"scaling_factor", 1}, {"rank_accuracy", niah}});
    ropelab::io::append_jsonl(run + "/niah.jsonl", {{"kind", "alpha_star"}, {"model_id", model}, {"checkpoint", ckpt},
                                                   {"step", 100}, {"family", "ntk"}, {"length", 512},
                                                   {"best_factor", alpha},
                                                   {"alpha_star_censored", censored ? json("upper") : json()}});
  };
  add_run(1e4, "1e4", 1, 0.5, 0.6, 4, false);
  add_run(1e4, "1e4", 2, 0.7, 0.8, 8, false);
  add_run(1e4, "1e4", 3, 0.9, 1.0, 16, true);
  add_run(1e6, "1e6", 1, 1.0, 0.5, 2, false);
  add_run(1e6, "1e6", 2, 0.8, 0.3, 2, false);
  const auto in = report::collect_inputs({study});
  auto find = [&](double theta, const std::string& quantity) {
    for (const auto& r : in.between_trainings)
      if (r["theta"] == theta && r["quantity"] == quantity) return r;
    ADD_FAILURE() << "no record for " << quantity << " at " << theta;
    return json();
  };
  const double half = 4.303 * 0.2 / std::sqrt(3.0);
  const auto g4 = find(1e4, "gamma");
  EXPECT_EQ(g4["n_trainings"], 3);
  EXPECT_EQ(g4["protocol"], "taf");
  EXPECT_NEAR(g4["mean"].get<double>(), 0.7, 1e-12);
  EXPECT_NEAR(g4["sd"].get<double>(), 0.2, 1e-12);
  EXPECT_NEAR(g4["ci95_lo"].get<double>(), 0.7 - half, 1e-9);
  EXPECT_NEAR(g4["ci95_hi"].get<double>(), 0.7 + half, 1e-9);
  EXPECT_EQ(g4["seeds"], json({1, 2, 3}));
  EXPECT_EQ(g4["interval"], "t, df = n - 1");
  const auto n4 = find(1e4, "niah_rank_accuracy");
  EXPECT_NEAR(n4["ci95_lo"].get<double>(), 0.8 - half, 1e-9);
  EXPECT_EQ(n4["method"], "none");
  const auto a4 = find(1e4, "alpha_star");
  EXPECT_NEAR(a4["mean"].get<double>(), 8, 1e-9);
  EXPECT_NEAR(a4["ci95_lo"].get<double>(), std::exp2(3 - 4.303 / std::sqrt(3.0)), 1e-9);
  EXPECT_NEAR(a4["ci95_hi"].get<double>(), std::exp2(3 + 4.303 / std::sqrt(3.0)), 1e-9);
  EXPECT_EQ(a4["censored_count"], 1);
  const auto g6 = find(1e6, "gamma");
  EXPECT_EQ(g6["n_trainings"], 2);
  EXPECT_NEAR(g6["mean"].get<double>(), 0.9, 1e-12);
  EXPECT_TRUE(g6["ci95_lo"].is_null());
  EXPECT_NE(g6["note"].get<std::string>().find("fewer than 3"), std::string::npos);
  // The t quantile against the table's values.
  EXPECT_NEAR(report::t_quantile_975(2), 4.303, 1e-9);
  EXPECT_NEAR(report::t_quantile_975(40), 2.021, 2e-3);

  // The table shows the interval, or "n < 3"; the γ-vs-θ chart draws each training and the interval.
  const auto tables = report::build_tables(in, report::summary_rows(in));
  const auto t = std::find_if(tables.begin(), tables.end(), [](const auto& t) { return t.id == "between-trainings-table"; });
  ASSERT_NE(t, tables.end());
  bool seen_interval = false, seen_small = false;
  for (const auto& row : t->rows) {
    if (row[1] == "gamma" && row[0].rfind("θ=1e4", 0) == 0)
      seen_interval = row[5] == "[" + fmt(0.7 - half, "%.3f") + ", " + fmt(0.7 + half, "%.3f") + "]";
    if (row[1] == "gamma" && row[0].rfind("θ=1e6", 0) == 0) seen_small = row[5] == "n < 3";
  }
  EXPECT_TRUE(seen_interval) << t->rows.size() << " rows; first: " << (t->rows.empty() ? "" : t->rows[0][0] + " | " + t->rows[0][5]);
  EXPECT_TRUE(seen_small);
  const auto charts = report::build_charts(in);
  const auto chart = std::find_if(charts.begin(), charts.end(), [](const auto& c) { return c.id == "gamma-vs-theta"; });
  ASSERT_NE(chart, charts.end());
  const std::string spec = chart->spec.dump();
  EXPECT_NE(spec.find("diamond"), std::string::npos);
  size_t points = 0;
  for (const auto& layer : chart->spec["layer"])
    if (layer["mark"].is_object() && layer["mark"].value("type", "") == "point" && layer["mark"].value("shape", "") != "diamond")
      points = layer["data"]["values"].size();
  EXPECT_EQ(points, 5u) << chart->spec["layer"].dump().substr(0, 3000);  // one per training

  // The report writes them as JSON Lines too.
  report::Options opt;
  opt.out_dir = out;
  opt.svg = false;
  report::write_report({study}, opt);
  EXPECT_EQ(ropelab::io::read_jsonl(out + "/between_trainings.jsonl").size(), in.between_trainings.size());

  // A study's report lives in the study (OUT/report, as the pilot writes it):
  // reading the study again takes its runs, not the previous report's summary.
  opt.out_dir = study + "/report";
  report::write_report({study}, opt);
  const auto again = report::collect_inputs({study});
  EXPECT_EQ(again.between_trainings.size(), in.between_trainings.size());
  for (const auto& u : again.unknown) EXPECT_EQ(u.kind.find("between_trainings"), std::string::npos) << u.file;
}

// Perplexity of several models: one panel per model and one colour per
// method (the same method the same colour in every panel), each panel with
// its model's T_train rule; one model keeps the single plot.
TEST_F(ReportTest, PerplexityOfSeveralModelsIsFacetedByModel) {
  const std::string file = root + "/ppl.jsonl";
  std::string s;
  for (const char* model : {"ropelab:a", "ropelab:b"})
    for (const char* method : {"none", "yarn:4"})
      for (int len : {128, 256})
        s += json({{"kind", "perplexity"}, {"model_id", model}, {"method", method}, {"length", len},
                   {"perplexity", 50.0 + len / 8}, {"arch", {{"T_train", model[8] == 'a' ? 128 : 256}}}, {"step", 10}})
                 .dump() + "\n";
  ropelab::io::write_atomic(file, s);
  const auto in = report::collect_inputs({file});
  const auto charts = report::build_charts(in);
  const report::Chart* ppl = nullptr;
  for (const auto& c : charts)
    if (c.id == "perplexity-vs-length") ppl = &c;
  ASSERT_NE(ppl, nullptr);
  EXPECT_EQ(ppl->spec["facet"]["field"], "model");
  EXPECT_EQ(ppl->spec["spec"]["layer"][0]["encoding"]["color"]["field"], "method");
  const json values = ppl->spec["data"]["values"];
  ASSERT_EQ(values.size(), 8u + 2u);  // 2 models x 2 methods x 2 lengths, and a T_train rule per model
  std::set<std::pair<std::string, double>> rules;
  for (const auto& v : values)
    if (v.contains("rule")) rules.insert({v["model"].get<std::string>(), v["T_train"].get<double>()});
  EXPECT_EQ(rules, (std::set<std::pair<std::string, double>>{{"ropelab:a", 128}, {"ropelab:b", 256}}));
}

TEST_F(ReportTest, RefusesWhatIsNotAnInput) {
  report::Options opt;
  opt.out_dir = out;
  const std::string txt = root + "/notes.txt";
  ropelab::io::write_atomic(txt, "just some text\n");
  std::string e = error_of({txt}, opt);
  EXPECT_NE(e.find(txt), std::string::npos) << e;
  EXPECT_NE(e.find("is not a run directory, a study directory or a .jsonl result file"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(out)) << "nothing is written for a refused input";

  e = error_of({root + "/missing"}, opt);
  EXPECT_NE(e.find(root + "/missing: no such file or directory"), std::string::npos) << e;

  ropelab::io::make_dirs(root + "/empty/sub");
  e = error_of({root + "/empty"}, opt);
  EXPECT_NE(e.find(root + "/empty is a directory with no run directory"), std::string::npos) << e;

  const std::string bad = root + "/bad.jsonl";
  ropelab::io::write_atomic(bad, fit_rec.dump() + "\nnot json\n" + fit_rec.dump() + "\n");
  e = error_of({bad}, opt);
  EXPECT_NE(e.find(bad + ":2"), std::string::npos) << e;

  const std::string prose = root + "/prose.jsonl";
  ropelab::io::write_atomic(prose, "one line of prose\n");
  e = error_of({prose}, opt);
  EXPECT_NE(e.find(prose + ": no JSON record"), std::string::npos) << e;
}

TEST_F(ReportTest, MissingLibrariesSayRunSetup) {
  report::Options opt;
  opt.out_dir = out;
  opt.node_modules = root + "/no_node_modules";
  const std::string e = error_of({study}, opt);
  EXPECT_NE(e.find(root + "/no_node_modules/vega/build/vega.min.js is missing"), std::string::npos) << e;
  EXPECT_NE(e.find("run scripts/setup"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(out + "/report.html"));
}

// The page in a real browser, offline: every chart must be drawn, none may fail.
TEST_F(ReportTest, HeadlessChromiumDrawsEveryChart) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) FAIL() << "chromium not found: run scripts/setup (scripts/report-deps installs it)";
  const report::Written w = write(/*svg=*/false);
  const std::string profile = root + "/chromium-profile";
  ropelab::io::make_dirs(profile);
  const std::string cmd = "timeout 120 '" + chromium +
                          "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                          "--disable-background-networking --disable-component-update --disable-sync "
                          "--user-data-dir='" + profile + "' --virtual-time-budget=10000 --dump-dom 'file://" +
                          out + "/report.html' 2>/dev/null";
  const auto drawn = ropelab::test::run_shell(cmd);
  ASSERT_EQ(drawn.exit_code, 0) << cmd;
  const std::string& dom = drawn.output;
  EXPECT_EQ(dom.find("data-chart-error"), std::string::npos)
      << dom.substr(dom.find("data-chart-error"), 300);
  EXPECT_NE(dom.find("data-charts-drawn=\"" + std::to_string(w.n_charts) + "\""), std::string::npos)
      << "the page did not report its charts drawn";
  EXPECT_EQ(w.n_charts, static_cast<int>(kNCharts));
  EXPECT_EQ(count(dom, "class=\"marks\""), kNCharts) << "one rendered SVG per chart";
  for (const auto& id : kChartIds) {  // each container holds its drawn SVG
    const size_t at = dom.find("id=\"chart-" + id + "\"");
    ASSERT_NE(at, std::string::npos) << id;
    const size_t next = dom.find("<section", at);
    EXPECT_NE(dom.substr(at, next == std::string::npos ? std::string::npos : next - at).find("class=\"marks\""),
              std::string::npos)
        << id << " not drawn";
  }
}

}  // namespace

// A Hugging Face model's γ-flow (one record per step folder) is one series,
// named by its model_id, not by the folder its step folders sit in.
TEST_F(ReportTest, HuggingFaceStepFoldersAreOneSeriesNamedByModelId) {
  const std::string file = root + "/hf-gamma.jsonl";
  std::string s;
  for (int step : {1000, 2000}) {
    json rec = gamma_record({{"rope_theta", 10000.0}, {"family", "huggingface"}, {"architecture", "GPTNeoXForCausalLM"}},
                            kFitD, planted(kFitD, 0.5 + step / 1e4, 0.7, 3), "EleutherAI/pythia-70m");
    rec["checkpoint"] = root + "/models/pythia-70m/step" + std::to_string(step);
    rec["step"] = step;
    s += rec.dump() + "\n";
  }
  ropelab::io::write_atomic(file, s);
  const auto in = report::collect_inputs({file});
  ASSERT_EQ(in.gamma.size(), 2u);
  for (const auto& g : in.gamma) EXPECT_EQ(g.series, "EleutherAI/pythia-70m");
}

// The α sweep: accuracy against the factor per length, α_opt marked, and the
// α* table with both closed forms, from the records of `eval niah` sweeps.
TEST_F(ReportTest, AlphaSweepChartAndAlphaStarTable) {
  const std::string file = root + "/alpha.jsonl";
  std::string s;
  auto add = [&](json r) { r["model_id"] = "ropelab:t"; r["step"] = 6000; r["arch"] = {{"rope_theta", 1000.0}}; s += r.dump() + "\n"; };
  for (double f : {0.5, 1.0, 2.0})
    add({{"kind", "niah_pooled"}, {"method", "ntk:" + fmt(f, "%g")}, {"family", "ntk"}, {"alpha_source", "fixed"},
         {"scaling_factor", f}, {"length", 256}, {"trials", 100}, {"rank_accuracy", f / 2}, {"rank_ci95", {0.1, 0.9}}});
  add({{"kind", "niah_pooled"}, {"method", "ntk:alpha_opt"}, {"family", "ntk"}, {"alpha_source", "alpha_opt"},
       {"scaling_factor", 2.23}, {"length", 256}, {"trials", 100}, {"rank_accuracy", 0.71}});
  add({{"kind", "niah_pooled"}, {"method", "none"}, {"family", "none"}, {"alpha_source", "fixed"},
       {"scaling_factor", 1.0}, {"length", 256}, {"trials", 100}, {"rank_accuracy", 0.11}});  // no factor family: not drawn
  add({{"kind", "alpha_star"}, {"family", "ntk"}, {"length", 256}, {"best_factor", 2.0}, {"best_accuracy", 1.0},
       {"best_ci95", {0.96, 1.0}}, {"near_best_span", {2.0, 2.0}},
       {"alpha_opt", {{"gamma", 0.85}, {"value", 2.23}, {"accuracy", 0.71}, {"ratio_best_to_value", 0.897},
                      {"within_best_interval", false}}},
       {"alpha_opt_measured", {{"gamma", 1.09}, {"value", nullptr}, {"unavailable", "undefined"}}}});
  ropelab::io::write_atomic(file, s);

  const auto in = report::collect_inputs({file});
  EXPECT_TRUE(in.unknown.empty());
  const auto chart = report::alpha_sweep_chart(in);
  ASSERT_TRUE(chart.has_value());
  const json values = chart->spec["data"]["values"];
  ASSERT_EQ(values.size(), 4u);  // three swept factors and α_opt; not `none`
  EXPECT_EQ(values[3]["source"], "alpha_opt");
  EXPECT_EQ(values[3]["factor"], 2.23);
  EXPECT_EQ(values[0]["lo"], 0.1);
  EXPECT_EQ(chart->spec["spec"]["layer"][0]["encoding"]["x"]["scale"]["type"], "log");

  const auto tables = report::build_tables(in, report::summary_rows(in));
  const auto it = std::find_if(tables.begin(), tables.end(), [](const auto& t) { return t.id == "alpha-star-table"; });
  ASSERT_NE(it, tables.end());
  ASSERT_EQ(it->rows.size(), 1u);
  EXPECT_EQ(it->rows[0], (std::vector<std::string>{"ropelab:t", "6000", "1000", "ntk", "256", "2", "1.00 [0.96, 1.00]",
                                                   "2 – 2", "2.23 (γ 0.85)", "0.71", "0.897", "undefined (γ 1.09)",
                                                   "-", "-", "-", "-"}));  // no Liu/Men in this record
}
