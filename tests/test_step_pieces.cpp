// The speed pieces of a training step (issue 17), each against the plain
// step it replaces, on the CPU: the fused head + cross-entropy against
// float64 autograd, the fused AdamW kernel against torch::optim::AdamW (where
// this libtorch has it), and whole runs with each piece on and off.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/io.h"
#include "model/linear_cross_entropy.h"
#include "train/adamw.h"
#include "train/trainer.h"
#include "train_fixture.h"

using namespace ropelab;

TEST(StepPieces, LinearCrossEntropyEqualsFloat64AutogradInLossAndGradients) {
  torch::manual_seed(3);
  const int64_t N = 37, d = 16, V = 53;
  auto h = torch::randn({N, d}), W = torch::randn({V, d}) * 0.5;
  auto targets = torch::randint(0, V, {N}, at::kLong);
  // The reference: full logits, float64, autograd.
  auto h64 = h.to(at::kDouble).requires_grad_(), W64 = W.to(at::kDouble).requires_grad_();
  auto ref = torch::nn::functional::cross_entropy(h64.matmul(W64.t()), targets);
  ref.backward();
  for (int64_t chunk : {1, 8, 37, 100}) {  // one row a chunk, several, exactly N, more than N
    auto hc = h.clone().requires_grad_(), Wc = W.clone().requires_grad_();
    auto loss = model::linear_cross_entropy(hc, Wc, targets, chunk);
    (loss * 2.0).backward();  // a scaled output gradient reaches both inputs scaled
    EXPECT_NEAR(loss.item<double>(), ref.item<double>(), 1e-5) << chunk;
    EXPECT_LT((hc.grad().to(at::kDouble) - 2.0 * h64.grad()).abs().max().item<double>(), 1e-6) << chunk;
    EXPECT_LT((Wc.grad().to(at::kDouble) - 2.0 * W64.grad()).abs().max().item<double>(), 1e-6) << chunk;
  }
}

TEST(StepPieces, FusedAdamWStepsLikeTorchOptimAdamW) {
  if (!train::fused_adamw_available(at::Device(at::kCPU)))
    GTEST_SKIP() << "this libtorch has no CPU fused AdamW (it arrived in 2.4); the 2.x world runs this test";
  const auto dir = test::scratch_dir();
  auto cfg = test::tiny_config(test::tiny_data(dir));
  cfg.model.vocab_size = 300;
  cfg.weight_decay = 0.1;
  auto a = model::make_model(cfg.model, 5), b = model::make_model(cfg.model, 5);
  auto opt_a = train::make_optimizer(a, cfg), opt_b = train::make_optimizer(b, cfg);
  torch::manual_seed(9);
  for (int step = 0; step < 5; ++step) {
    auto idx = torch::randint(0, 300, {2, 17}, at::kLong);
    for (auto* m : {&a, &b}) {
      (*m)->zero_grad();
      (*m)->loss(idx.narrow(1, 0, 16), idx.narrow(1, 1, 16)).backward();
    }
    train::adamw_step(opt_a, /*fused=*/false);
    train::adamw_step(opt_b, /*fused=*/true);
  }
  const auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    EXPECT_LT((p.value() - pb[p.key()]).abs().max().item<double>(), 1e-6) << p.key();
}

// Whole runs: the losses of each piece on equal those of the plain step.
TEST(StepPieces, EachPieceOnAndOffTrainsTheSameLosses) {
  const auto dir = test::scratch_dir();
  auto plain = test::tiny_config(test::tiny_data(dir));
  plain.max_steps = 8;
  plain.fused_adamw = false;
  plain.ce_chunk = 0;
  plain.autocast = "off";
  train::train_new(plain, dir + "/plain");
  const auto base = io::read_jsonl(dir + "/plain/metrics.jsonl");
  ASSERT_EQ(base.size(), 8u);

  struct Variant {
    const char* name;
    void (*set)(train::TrainConfig&);
    double tolerance;  // on each step's loss
  };
  const Variant variants[] = {
      {"ce-chunk", [](train::TrainConfig& c) { c.ce_chunk = 24; }, 1e-4},
      {"fused-adamw", [](train::TrainConfig& c) { c.fused_adamw = true; }, 1e-4},
      // bf16 autocast: the same run to bf16's precision (a few parts in a thousand per step).
      {"autocast-bf16", [](train::TrainConfig& c) { c.autocast = "bf16"; }, 0.05},
      {"all", [](train::TrainConfig& c) { c.ce_chunk = 24; c.fused_adamw = true; c.autocast = "bf16"; }, 0.05},
  };
  for (const auto& v : variants) {
    auto cfg = plain;
    v.set(cfg);
    train::train_new(cfg, dir + "/" + v.name);
    const auto got = io::read_jsonl(dir + "/" + std::string(v.name) + "/metrics.jsonl");
    ASSERT_EQ(got.size(), base.size()) << v.name;
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i]["loss"].get<double>(), base[i]["loss"].get<double>(), v.tolerance) << v.name << " step " << i;
  }
  // The loss moved over the 8 steps, so agreement is not agreement at the start only.
  EXPECT_LT(base.back()["loss"].get<double>(), base.front()["loss"].get<double>() - 0.1);
}
