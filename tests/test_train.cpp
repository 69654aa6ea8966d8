#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/error.h"
#include "common/io.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_fixture.h"

using namespace ropelab;

TEST(Train, LossFallsAndTheRunDirectoryIsComplete) {
  const auto dir = ropelab::test::scratch_dir();
  auto cfg = ropelab::test::tiny_config(ropelab::test::tiny_data(dir));
  cfg.max_steps = 80;
  const auto res = train::train_new(cfg, dir + "/run");
  const auto metrics = io::read_jsonl(dir + "/run/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 80u);
  for (const char* k : {"step", "tokens", "loss", "lr", "grad_norm", "tok_per_s"}) EXPECT_TRUE(metrics[5].contains(k)) << k;
  EXPECT_EQ(metrics[79]["tokens"], 80 * 4 * 32);
  const double first = metrics[0]["loss"];
  EXPECT_NEAR(first, std::log(300.0), 0.5);  // untrained: about uniform over the vocabulary
  EXPECT_LT(res.last_val_loss, 0.6 * first) << "validation loss did not fall enough";
  std::vector<int64_t> steps;
  for (const auto& e : train::read_manifest(dir + "/run")) steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 20, 40, 60, 80}));
  auto loaded = train::load_model(train::checkpoints_dir(dir + "/run") + "/step_00000080.pt");
  EXPECT_EQ(loaded.state["step"], 80);
  EXPECT_EQ(loaded.state["data_position"]["next_step"], 80);
  EXPECT_EQ(loaded.state["data_position"]["samples_drawn"], 80 * 4);
  EXPECT_EQ(loaded.model->cfg.vocab_size, 300);
  EXPECT_THROW(train::train_new(cfg, dir + "/run"), Error);  // never overwrite a run
}

TEST(Train, GradientAccumulationEqualsTheLargerBatch) {
  const auto dir = ropelab::test::scratch_dir();
  auto big = ropelab::test::tiny_config(ropelab::test::tiny_data(dir));
  big.max_steps = 6;
  auto acc = big;
  acc.batch_size = 2;
  acc.grad_accum = 2;
  train::train_new(big, dir + "/big");
  train::train_new(acc, dir + "/acc");
  const auto a = io::read_jsonl(dir + "/big/metrics.jsonl"), b = io::read_jsonl(dir + "/acc/metrics.jsonl");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i]["loss"].get<double>(), b[i]["loss"].get<double>(), 1e-5) << i;
}

// --profile-steps A:B: the op-level profile of those steps lands in
// RUN/profile.json (nothing half-written beside it), with the step's named
// scopes and the matmuls inside them; builds.jsonl has the start's build.
// A range that is not A:B with 1 <= A <= B is refused by name.
TEST(Train, ProfileStepsWritesTheTraceOfThoseSteps) {
  const auto dir = ropelab::test::scratch_dir();
  auto cfg = ropelab::test::tiny_config(ropelab::test::tiny_data(dir));
  cfg.max_steps = 4;
  cfg.checkpoints = "every:4";
  cfg.profile_steps = "2:3";
  train::train_new(cfg, dir + "/run");
  ASSERT_TRUE(std::filesystem::exists(dir + "/run/profile.json"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/run/profile.json.partial"));
  const auto trace = io::read_json(dir + "/run/profile.json");
  std::map<std::string, int> seen;
  for (const auto& e : trace) ++seen[e.value("name", "")];
  EXPECT_EQ(seen["ropelab::optimizer"], 2);  // steps 2 and 3, not 1 or 4
  EXPECT_EQ(seen["ropelab::backward"], 2);
  EXPECT_GT(seen["aten::mm"] + seen["aten::addmm"], 0);
  const auto builds = io::read_jsonl(dir + "/run/builds.jsonl");
  ASSERT_EQ(builds.size(), 1u);
  EXPECT_EQ(builds[0]["step"], 0);
  EXPECT_TRUE(builds[0]["build"].contains("allocator"));
  for (const char* bad : {"3:1", "0:2", "2", "2:3x"}) {
    auto c = cfg;
    c.profile_steps = bad;
    EXPECT_THROW(c.validate(), Error) << bad;
  }
}

// A run is named by its seed, its build and its thread count: with all three
// the same, two trainings give bit-identical losses and weights; with another
// seed they differ. Every checkpoint records the build and threads.
TEST(Train, SameSeedBuildAndThreadsGiveBitIdenticalLosses) {
  const auto dir = ropelab::test::scratch_dir();
  auto cfg = ropelab::test::tiny_config(ropelab::test::tiny_data(dir));
  cfg.max_steps = 12;
  cfg.checkpoints = "every:12";
  cfg.data_mix = "passkey:0.5";
  cfg.model.T_train = 160;  // room for a passkey example with the byte-heavy 300-piece tokenizer
  train::train_new(cfg, dir + "/a");
  train::train_new(cfg, dir + "/b");
  auto other = cfg;
  other.seed = cfg.seed + 1;
  train::train_new(other, dir + "/c");
  const auto a = io::read_jsonl(dir + "/a/metrics.jsonl"), b = io::read_jsonl(dir + "/b/metrics.jsonl"),
             c = io::read_jsonl(dir + "/c/metrics.jsonl");
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << i + 1;  // bit for bit
    EXPECT_EQ(a[i]["grad_norm"].get<double>(), b[i]["grad_norm"].get<double>()) << "step " << i + 1;
    differ += a[i]["loss"].get<double>() != c[i]["loss"].get<double>();
  }
  EXPECT_GT(differ, 6);
  const auto wa = train::load_model(dir + "/a/checkpoints/step_00000012.pt");
  const auto wb = train::load_model(dir + "/b/checkpoints/step_00000012.pt");
  const auto pa = wa.model->parameters(), pb = wb.model->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i;
  const auto& build = wa.state.at("build");
  EXPECT_EQ(build.at("threads"), 1);
  EXPECT_EQ(build.at("device"), "cpu");
  EXPECT_FALSE(build.at("commit").get<std::string>().empty());
  EXPECT_TRUE(build.at("blas").contains("library"));
}

TEST(Train, NonFiniteLossStopsNamingTheStepAndKeepsTheLastGoodCheckpoint) {
  const auto dir = ropelab::test::scratch_dir();
  auto cfg = ropelab::test::tiny_config(ropelab::test::tiny_data(dir));
  cfg.checkpoints = "every:5";
  cfg.fault_nan_step = 7;
  try {
    train::train_new(cfg, dir + "/run");
    FAIL() << "expected the NaN guard to stop the run";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("NaN at step 7"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Last good checkpoint: step 5"), std::string::npos) << msg;
  }
  EXPECT_EQ(train::read_manifest(dir + "/run").back().step, 5);
  EXPECT_EQ(io::read_jsonl(dir + "/run/metrics.jsonl").size(), 6u);
}

// The user's path through the binary: export a checkpoint in the Hugging Face
// layout, start a new run from it, and get the very same weights at step 0.
TEST(Train, ExportHfThenInitFromStartsFromTheSameWeights) {
  using ropelab::test::run_ropelab;
  const auto dir = ropelab::test::scratch_dir();
  const auto flags = ropelab::test::tiny_flags(ropelab::test::tiny_data(dir));
  ASSERT_EQ(run_ropelab("train " + flags + " --max-steps 3 --checkpoints list:3 --out " + dir + "/a").exit_code, 0);
  const auto ckpt = train::checkpoints_dir(dir + "/a") + "/step_00000003.pt";
  auto r = run_ropelab("export hf --ckpt " + ckpt + " --out " + dir + "/hf");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("LlamaForCausalLM"), std::string::npos) << r.output;
  EXPECT_TRUE(io::exists(dir + "/hf/tokenizer.model"));
  EXPECT_EQ(run_ropelab("export hf --ckpt " + ckpt + " --out " + dir + "/hf").exit_code, 2);  // never overwrites

  // Model flags are left out: they come from the directory's config.json.
  r = run_ropelab("train --data-dir " + dir + "/data --threads 1 --init-from " + dir +
                  "/hf --max-steps 1 --checkpoints list:0 --out " + dir + "/b");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto a = train::load_model(ckpt), b = train::load_model(train::checkpoints_dir(dir + "/b") + "/step_00000000.pt");
  const auto pb = b.model->named_parameters();
  for (const auto& p : a.model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();

  r = run_ropelab("train --data-dir " + dir + "/data --threads 1 --d-model 64 --init-from " + dir +
                  "/hf --max-steps 1 --out " + dir + "/c");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("d_model is 32 there but 64 in this run"), std::string::npos) << r.output;
}

// A folder of bare llm.c shards (what bench/make_tokens.py writes) is trained
// on as it is, not "prepared" over: the vocabulary is the largest id + 1.
TEST(Train, TrainsOnAFolderOfBareLlmcShards) {
  const auto dir = ropelab::test::scratch_dir();
  const std::string data = dir + "/tokens";
  std::filesystem::create_directories(data);
  auto shard = [&](const std::string& name, int n) {
    std::ofstream f(data + "/" + name, std::ios::binary);
    int32_t header[256] = {20240520, 1, n};
    f.write(reinterpret_cast<const char*>(header), sizeof header);
    for (int i = 0; i < n; ++i) {
      const uint16_t t = i == 0 ? 49 : static_cast<uint16_t>((i * 7919) % 50);
      f.write(reinterpret_cast<const char*>(&t), 2);
    }
  };
  shard("bench_train_000000.bin", 5000);
  shard("bench_val_000000.bin", 1000);
  const auto r = ropelab::test::run_ropelab("train --data-dir " + data +
                                            " --d-model 32 --n-layers 1 --n-heads 2 --T-train 16 --max-steps 2 --threads 1 --out " +
                                            dir + "/run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(io::read_json(dir + "/run/config.json")["model"]["vocab_size"], 50);
  EXPECT_EQ(r.output.find("preparing"), std::string::npos) << r.output;
}

// A model of the designs released models ship — a sliding layer at its own θ
// and a full layer with YaRN, QK-norm — trained through the binary: resumed
// training gives the uninterrupted losses, and `ropelab logits` gives the same
// logits in one pass and through the KV cache (where the sliding layer keeps
// only its window).
TEST(Train, AHybridModelTrainsResumesAndItsLogitsAgreeThroughTheKvCache) {
  using ropelab::test::run_ropelab;
  const auto dir = ropelab::test::scratch_dir();
  auto flags = ropelab::test::tiny_flags(ropelab::test::tiny_data(dir));
  flags.replace(flags.find("--log-every 1000"), 16, "--log-every 1");  // a loss every step to compare
  flags += " --layer-pattern sliding,full --sliding-window 8 --sliding-rope-theta 100 --qk-norm true"
           " --rope-scaling yarn --rope-factor 2 --sliding-rope linear:2 --sliding-rotary-fraction 0.5";
  auto r = run_ropelab("train " + flags + " --max-steps 6 --checkpoints list:3,6 --out " + dir + "/straight");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_ropelab("train " + flags + " --max-steps 3 --checkpoints list:3 --out " + dir + "/split");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_ropelab("train --resume " + dir + "/split --max-steps 6");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = io::read_jsonl(dir + "/straight/metrics.jsonl"), b = io::read_jsonl(dir + "/split/metrics.jsonl");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i]["loss"], b[i]["loss"]) << i;
  const auto cfg = io::read_json(dir + "/straight/config.json")["model"];
  EXPECT_EQ(cfg["layer_pattern"], "sliding,full");
  EXPECT_EQ(cfg["rope_scaling"], "yarn");
  EXPECT_EQ(cfg["sliding_rope"], "linear:2");
  EXPECT_EQ(cfg["sliding_rotary_fraction"], 0.5);

  const std::string ckpt = train::checkpoints_dir(dir + "/straight") + "/step_00000006.pt";
  r = run_ropelab("logits --ckpt " + ckpt + " --length 40 --seed 3 --out " + dir + "/one.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_ropelab("logits --ckpt " + ckpt + " --length 40 --seed 3 --kv-cache --out " + dir + "/kv.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto one = io::read_json(dir + "/one.json"), kv = io::read_json(dir + "/kv.json");
  EXPECT_EQ(one["ids"], kv["ids"]);
  EXPECT_EQ(one["ids"].size(), 40u);
  EXPECT_EQ(one["arch"]["layer_pattern"], "sliding,full");
  EXPECT_EQ(one["arch"]["sliding_rope"]["rope_type"], "linear");
  EXPECT_EQ(one["arch"]["sliding_rotary_fraction"], 0.5);
  double worst = 0;
  for (size_t t = 0; t < 40; ++t)
    for (size_t v = 0; v < one["logits"][t].size(); ++v)
      worst = std::max(worst, std::abs(one["logits"][t][v].get<double>() - kv["logits"][t][v].get<double>()));
  EXPECT_LT(worst, 1e-4);
  // An evaluation-time method on a model with its own is refused, naming both.
  r = run_ropelab("logits --ckpt " + ckpt + " --ids 1,2,3 --scaling ntk:4");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("own RoPE method (yarn)"), std::string::npos) << r.output;
  r = run_ropelab("logits --ckpt " + ckpt + " --ids 1,2,99999");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--ids item 3 (99999) is outside the vocabulary"), std::string::npos) << r.output;
}
