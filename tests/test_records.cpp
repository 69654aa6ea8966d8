// The one record layout of the evaluations (eval/evaluation.h): every record
// of `eval gamma`, `eval niah` and `eval kv` carries the same provenance
// fields, and a shared field never overwrites a record's own.
#include <gtest/gtest.h>

#include "common/io.h"
#include "eval/evaluation.h"
#include "eval/gamma_eval.h"
#include "eval/kv_eval.h"
#include "eval/niah.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
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
}
