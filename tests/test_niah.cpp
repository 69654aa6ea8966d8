#include <gtest/gtest.h>
#include <map>
#include <set>
#include <torch/torch.h>

#include "common/error.h"
#include "common/io.h"
#include "eval/niah.h"
#include "theory/closed_forms.h"
#include "theory/gamma_record.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_fixture.h"

using namespace ropelab;

TEST(Niah, WilsonIntervalByHand) {
  // k=5, n=10, z=1.96: centre (0.5 + 0.19208)/1.38415 = 0.5; half = 1.96·sqrt(0.025 + 0.0096040)/1.38415 = 0.26343
  auto a = eval::wilson95(5, 10);
  EXPECT_NEAR(a.first, 0.23659, 1e-4);
  EXPECT_NEAR(a.second, 0.76341, 1e-4);
  auto b = eval::wilson95(0, 50);  // upper = z²/n / (1 + z²/n) = 0.076829/1.076829 = 0.07135
  EXPECT_EQ(b.first, 0.0);
  EXPECT_NEAR(b.second, 0.07135, 1e-4);
}

TEST(Niah, RefusesBadArgumentsBeforeAnyWork) {
  model::ModelConfig c;
  c = c.resolved();
  auto refuses = [&](eval::NiahOptions o, const std::string& needle) {
    try {
      eval::plan_niah(o, c);
      ADD_FAILURE() << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  eval::NiahOptions o;
  o.depths = {0.5, 1.5};
  refuses(o, "1.5");
  o = {};
  o.lengths = {"abc"};
  refuses(o, "\"abc\"");
  o = {};
  o.lengths = {"1000000000000"};
  refuses(o, "memory");
  o = {};
  o.scaling = "none,rope:2";
  refuses(o, "rope:2");
  o = {};
  EXPECT_EQ(eval::plan_niah(o, c).lengths, (std::vector<int64_t>{128, 256, 512, 1024, 2048}));  // T_train 256
}

TEST(Niah, RunsEveryMethodLengthAndDepthAndWritesRecords) {
  const auto dir = test::scratch_dir();
  auto cfg = test::tiny_config(test::tiny_data(dir));
  cfg.model.T_train = 192;  // room for two labelled needles with a byte-heavy 300-piece tokenizer
  cfg.max_steps = 5;
  cfg.data_mix = "passkey:0.5";
  train::train_new(cfg, dir + "/run");
  eval::NiahOptions o;
  o.lengths = {"1x", "2x"};
  o.depths = {0.0, 1.0};
  o.trials = 3;
  o.scaling = "none,ntk:alpha_opt,yarn:2";
  o.ppl_windows = 2;
  o.out = dir + "/niah.jsonl";
  const auto recs = eval::eval_niah(train::checkpoints_dir(dir + "/run") + "/step_00000005.pt", o);
  ASSERT_EQ(recs.size(), 3u * 2u * 2u + 3u * 2u + 3u * 2u + 3u);  // per depth, pooled, perplexity; reach per method
  int niah = 0, reach = 0;
  for (const auto& r : recs) {
    if (r["kind"] == "niah_reach") {
      ++reach;
      EXPECT_EQ(r["lengths"].size(), 2u);
      EXPECT_EQ(r["predicted_longest"].is_null(), r["method"] != "none");  // Liu and Men: a fixed base only
      continue;
    }
    if (r["kind"] == "niah_pooled") {
      EXPECT_EQ(r["trials"], 6);  // 2 depths x 3 trials
      continue;
    }
    if (r["kind"] != "niah") {
      EXPECT_GT(r["perplexity"].get<double>(), 1.0);
      continue;
    }
    ++niah;
    const double acc = r["rank_accuracy"];
    EXPECT_GE(acc, r["rank_ci95"][0].get<double>());
    EXPECT_LE(acc, r["rank_ci95"][1].get<double>());
    EXPECT_TRUE(r.contains("exact_accuracy"));
    if (r["method"] == "ntk:alpha_opt") EXPECT_GT(r["scaling_factor"].get<double>(), 0.0);
  }
  EXPECT_EQ(niah, 12);
  EXPECT_EQ(io::read_jsonl(o.out).size(), recs.size());
  EXPECT_NE(eval::niah_table(recs).find("yarn:2"), std::string::npos);
}

TEST(Niah, FindsTheCheckpointsGammaRecord) {
  const nlohmann::json other = {{"model_id", "ropelab:b"}, {"step", 5}, {"measurement", {{"gamma", 0.1}}}};
  const nlohmann::json model_level = {{"model_id", "ropelab:a"}, {"measurement", {{"gamma", 0.2}}}};
  const nlohmann::json by_step = {{"model_id", "ropelab:a"}, {"step", 5}, {"measurement", {{"gamma", 0.3}}}};
  const nlohmann::json by_file = {{"model_id", "x"}, {"checkpoint", "r/a/checkpoints/step_5.pt"},
                                  {"measurement", {{"gamma", 0.4}}}};
  const nlohmann::json no_gamma = {{"model_id", "ropelab:a"}, {"step", 5}, {"measurement", {{"gamma", nullptr}}}};
  auto find = [](std::vector<nlohmann::json> recs) {
    const auto r = find_gamma_record(recs, "ropelab:a", "r/a/checkpoints/step_5.pt", 5);
    return r ? (*r)["measurement"]["gamma"].get<double>() : -1.0;
  };
  EXPECT_EQ(find({other}), -1.0);
  EXPECT_EQ(find({other, model_level}), 0.2);
  EXPECT_EQ(find({by_step, model_level, no_gamma}), 0.3);
  EXPECT_EQ(find({by_file, by_step, model_level}), 0.4);
  // A model without a step (a HF directory) matches its file or a model-level record, not a stepped one.
  nlohmann::json null_step = model_level;
  null_step["step"] = nullptr;
  EXPECT_FALSE(find_gamma_record({by_step}, "ropelab:a", "elsewhere.pt", std::nullopt));
  EXPECT_EQ((*find_gamma_record({by_step, null_step}, "ropelab:a", "elsewhere.pt", std::nullopt))["measurement"]["gamma"], 0.2);
}

// A sweep on a tiny model: every α sees the same prompts (ntk:1 is the
// unscaled model, so it must score exactly as none does), the closed forms
// come along with the γ_t and the measured γ, and one α* record per length.
TEST(Niah, SweepIsPairedAndComparesBothClosedForms) {
  const auto dir = test::scratch_dir();
  auto cfg = test::tiny_config(test::tiny_data(dir));
  cfg.model.T_train = 128;
  cfg.max_steps = 3;
  train::train_new(cfg, dir + "/run");
  const std::string ckpt = train::checkpoints_dir(dir + "/run") + "/step_00000003.pt";
  const auto gamma_file = [&](double g) {
    io::write_atomic(dir + "/gamma.jsonl", nlohmann::json({{"model_id", "ropelab:run"}, {"checkpoint", ckpt},
                                                                {"step", 3}, {"measurement", {{"gamma", g}}}})
                                                    .dump() + "\n");
    return dir + "/gamma.jsonl";
  };
  eval::NiahOptions o;
  o.lengths = {"1x", "2x"};
  o.depths = {0.5};
  o.trials = 6;
  o.scaling = "none,ntk-sweep:0.5..2:x2";
  o.ppl_windows = 0;
  o.gamma_from = gamma_file(0.6);
  const auto recs = eval::eval_niah(ckpt, o);
  std::map<std::string, nlohmann::json> pooled;  // method@length
  std::map<int64_t, std::set<std::string>> first_keys;  // length -> the first trial's key, over methods
  std::vector<nlohmann::json> stars;
  for (const auto& r : recs) {
    EXPECT_EQ(r["gamma_measured"]["gamma"], 0.6);
    if (r["kind"] == "niah") first_keys[r["length"].get<int64_t>()].insert(r["example"]["key"].get<std::string>());
    if (r["kind"] == "niah_pooled") pooled[r["method"].get<std::string>() + "@" + r["length"].dump()] = r;
    if (r["kind"] == "alpha_star") stars.push_back(r);
  }
  ASSERT_EQ(pooled.size(), 6u * 2u);  // none, 3 swept, alpha_opt, alpha_opt_measured
  for (const auto& [L, keys] : first_keys) EXPECT_EQ(keys.size(), 1u) << "methods saw different prompts at " << L;
  for (const char* L : {"128", "256"}) {
    const std::string at = std::string("@") + L;
    EXPECT_EQ(pooled["ntk:1" + at]["rank_hits"], pooled["none" + at]["rank_hits"]) << L;
    const double theta = cfg.model.rope_theta, len = std::stod(L);
    EXPECT_NEAR(pooled["ntk:alpha_opt" + at]["scaling_factor"].get<double>(), closed_forms::alpha_opt(theta, len, 0.85), 1e-9);
    EXPECT_NEAR(pooled["ntk:alpha_opt_measured" + at]["scaling_factor"].get<double>(), closed_forms::alpha_opt(theta, len, 0.6), 1e-9);
    EXPECT_EQ(pooled["ntk:0.5" + at]["sweep"], "ntk-sweep:0.5..2:x2");
  }
  ASSERT_EQ(stars.size(), 2u);
  EXPECT_EQ(stars[0]["factors"], nlohmann::json({0.5, 1, 2}));
  EXPECT_EQ(stars[0]["alpha_opt_measured"]["gamma"], 0.6);
  EXPECT_TRUE(stars[0]["alpha_opt"].contains("accuracy"));

  // A measured γ >= 1 has no α_opt: those cells are skipped and the α* record says why.
  o.gamma_from = gamma_file(1.05);
  o.lengths = {"1x"};
  o.no_generation = true;
  int measured_cells = 0;
  for (const auto& r : eval::eval_niah(ckpt, o)) {
    measured_cells += r.value("method", "") == "ntk:alpha_opt_measured";
    if (r["kind"] == "alpha_star")
      EXPECT_NE(r["alpha_opt_measured"]["unavailable"].get<std::string>().find("undefined"), std::string::npos);
  }
  EXPECT_EQ(measured_cells, 0);

  // No record for this checkpoint: one line naming the file and what was expected.
  io::write_atomic(dir + "/gamma.jsonl", R"({"model_id":"ropelab:elsewhere","step":3,"measurement":{"gamma":0.5}})" "\n");
  try {
    eval::eval_niah(ckpt, o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/gamma.jsonl: no γ record"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("\"step\": 3"), std::string::npos) << e.what();
  }
  o.gamma_from = dir + "/missing.jsonl";
  EXPECT_THROW(eval::plan_niah(o, cfg.model.resolved()), Error);
  o.gamma_from.clear();
  o.scaling = "ntk:alpha_opt_measured";
  try {
    eval::plan_niah(o, cfg.model.resolved());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs --gamma-from"), std::string::npos) << e.what();
  }
}
