// The one record layout of the evaluations (eval/evaluation.h): every record
// of `eval gamma`, `eval niah` and `eval kv` carries the same provenance
// fields, and a shared field never overwrites a record's own.
#include <gtest/gtest.h>

#include "common/config_fields.h"
#include "common/io.h"
#include "eval/evaluation.h"
#include "eval/gamma_eval.h"
#include "eval/kv_eval.h"
#include "eval/niah.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "test_util.h"
#include "train_fixture.h"

using namespace ropelab;

TEST(Records, ASharedFieldNeverOverwritesTheRecordsOwn) {
  const auto dir = test::scratch_dir();
  eval::RecordWriter w(dir + "/r.jsonl", {{"kind", "kv"}, {"step", 4}});
  w.write({{"kind", "kv_summary"}});
  w.write({{"x", 1}});
  ASSERT_EQ(w.records().size(), 2u);
  EXPECT_EQ(w.records()[0]["kind"], "kv_summary");
  EXPECT_EQ(w.records()[1]["kind"], "kv");
  EXPECT_EQ(w.records()[1]["step"], 4);
  EXPECT_EQ(io::read_jsonl(dir + "/r.jsonl").size(), 2u);
}

TEST(Records, EveryEvaluationCarriesTheSameProvenance) {
  const auto dir = test::scratch_dir();
  auto cfg = test::tiny_config(test::tiny_data(dir));
  cfg.model.T_train = 192;
  cfg.max_steps = 2;
  cfg.checkpoints = "list:2";
  train::train_new(cfg, dir + "/run");
  const auto ckpt = train::checkpoints_dir(dir + "/run") + "/step_00000002.pt";

  eval::GammaEvalOptions g;
  g.protocol.distances = {2, 4, 8, 16};
  g.protocol.prompts = 2;
  g.protocol.seeds = {1};
  g.protocol.tail = 4;
  g.fit.fit_min_d = 2;
  g.fit.bootstrap_resamples = 20;
  std::vector<nlohmann::json> recs = {eval::eval_gamma_checkpoint(ckpt, g)};
  eval::NiahOptions n;
  n.lengths = {"1x"};
  n.depths = {0.5};
  n.trials = 1;
  n.scaling = "none";
  n.ppl_windows = 1;
  for (auto& r : eval::eval_niah(ckpt, n)) recs.push_back(r);
  eval::KVEvalOptions k;
  k.policies = "recent";
  k.ratios = {0.5};
  k.context = 24;
  k.decode = 4;
  k.windows = 1;
  k.sinks = 2;
  k.obs_window = 4;
  k.gamma = 0.9;
  k.gmm_max_k = 0;
  k.niah_trials = 0;
  for (auto& r : eval::eval_kv(ckpt, k)) recs.push_back(r);

  const auto expected = eval::open_model(ckpt).provenance();
  EXPECT_EQ(expected["model_id"], "ropelab:run");
  // Objects merge field by field: a γ record keeps its own ropelab{...} and gains build and train_build.
  for (const auto& r : recs)
    for (const auto& [key, value] : expected.items()) {
      if (!value.is_object()) {
        EXPECT_EQ(r[key], value) << key << " in " << r.value("kind", "gamma");
        continue;
      }
      for (const auto& [sub, v] : value.items()) EXPECT_EQ(r[key][sub], v) << key << "." << sub << " in " << r.value("kind", "gamma");
    }
  EXPECT_EQ(expected["ropelab"]["build"]["device"], "cpu");

  // Every record carries the options it was measured with, under one path, from their declarations.
  const auto& gamma_options = recs.front()["ropelab"]["options"];
  EXPECT_EQ(gamma_options["distances"], nlohmann::json({2, 4, 8, 16}));
  EXPECT_EQ(gamma_options["tail"], 4);
  EXPECT_EQ(gamma_options["protocol"], "taf");
  EXPECT_EQ(gamma_options["bootstrap_resamples"], 20);
  EXPECT_EQ(gamma_options["fit_min_d"], 2.0);
  EXPECT_EQ(gamma_options["per_layer"], false);
  for (size_t i = 1; i < recs.size(); ++i) {
    ASSERT_TRUE(recs[i]["ropelab"].contains("options")) << recs[i].dump();
    const auto& o = recs[i]["ropelab"]["options"];
    if (recs[i]["ropelab"]["options"].contains("trials")) {
      EXPECT_EQ(o["trials"], 1) << recs[i].dump();
      EXPECT_EQ(o["lengths"], nlohmann::json({"1x"}));
      EXPECT_EQ(o["scaling"], "none");
    } else {
      ASSERT_TRUE(o.contains("policies")) << recs[i].dump();
      EXPECT_EQ(o["policies"], "recent") << recs[i].dump();
      EXPECT_EQ(o["context"], 24);
      EXPECT_EQ(o["obs_window"], 4);
      EXPECT_EQ(o["ratios"], nlohmann::json({0.5}));
    }
  }
}

namespace {
void expect_refusal(const std::string& args, const std::string& needle) {
  const auto r = test::run_ropelab(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
}
}  // namespace

// Evaluation options are declared once: each command's flags are its tables' fields, and a
// bad value is refused by the field's rule before any model is opened.
TEST(Records, EvalFlagsComeFromTheirDeclarations) {
  auto flags_of = [](const auto& fields) {
    std::vector<std::string> out;
    for (const auto& f : fields)
      if (f.flag) out.push_back(std::string("--") + f.flag);
    return out;
  };
  const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
      {"niah", flags_of(eval::niah_fields())},
      {"kv", flags_of(eval::kv_fields())},
      {"gamma", flags_of(eval::protocol_fields())},
      {"gamma", flags_of(fit::fit_fields())},
      {"gamma", flags_of(eval::gamma_eval_fields())},
  };
  for (const auto& [cmd, flags] : commands) {
    const auto help = test::run_ropelab("eval " + cmd + " --help");
    EXPECT_EQ(help.exit_code, 0) << help.output;
    ASSERT_FALSE(flags.empty()) << cmd;
    for (const auto& f : flags) EXPECT_NE(help.output.find(f + " "), std::string::npos) << cmd << " lacks " << f;
  }
  EXPECT_GE(eval::niah_fields().size(), 10u);
  expect_refusal("eval gamma --ckpt missing.pt --prompts 0", "--prompts must be > 0 (got 0)");
  expect_refusal("eval gamma --ckpt missing.pt --bootstrap-seed 3 --min-points 2", "--min-points must be >= 3 (got 2)");
  expect_refusal("eval gamma --ckpt missing.pt --distances 4,0,8", "--distances must all be > 0 (got [4,0,8])");
  expect_refusal("eval gamma --ckpt missing.pt --T-eval -1", "--T-eval must be > 0");
}
