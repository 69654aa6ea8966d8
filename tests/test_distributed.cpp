// Data parallelism over c10d with Gloo on the CPU (the same code path NCCL
// takes on GPUs): 2 ranks x micro-batch b train exactly like 1 rank x 2b,
// and a rank that dies makes the others exit non-zero within the timeout.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "common/io.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train_fixture.h"

using namespace ropelab;

namespace {
int free_port() { return 20000 + (::getpid() * 7 + 13) % 20000; }

// One rank of a hand-started 2-process job (no launcher), as torchrun would start it.
pid_t spawn_rank(const std::string& args, int rank, int world, int port, const std::string& log) {
  return test::spawn_ropelab(args, log,
                             {{"RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(world)},
                              {"LOCAL_RANK", std::to_string(rank)}, {"MASTER_ADDR", "127.0.0.1"},
                              {"MASTER_PORT", std::to_string(port)}});
}
}  // namespace

TEST(Distributed, TwoRanksEqualOneRankWithTheDoubleBatch) {
  const auto dir = test::scratch_dir();
  const auto flags = test::tiny_flags(test::tiny_data(dir)) + " --max-steps 6 --checkpoints every:6";
  auto one = test::run_ropelab("train " + flags + " --batch-size 4 --out " + dir + "/one");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto two = test::run_ropelab("launch --nproc 2 --master-port " + std::to_string(free_port()) + " -- train " + flags +
                               " --batch-size 2 --dist-bucket-mb 0.02 --out " + dir + "/two");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto a = io::read_jsonl(dir + "/one/metrics.jsonl"), b = io::read_jsonl(dir + "/two/metrics.jsonl");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);  // rank 0 alone writes metrics
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(a[i]["loss"].get<double>(), b[i]["loss"].get<double>(), 1e-5) << i;
  EXPECT_EQ(a[5]["tokens"], b[5]["tokens"]);
  auto wa = train::load_model(dir + "/one/checkpoints/step_00000006.pt").model->named_parameters();
  auto wb = train::load_model(dir + "/two/checkpoints/step_00000006.pt").model->named_parameters();
  for (const auto& p : wa) {
    const auto& q = wb[p.key()];
    EXPECT_LT((p.value() - q).abs().max().item<double>(), 1e-5) << p.key();
  }
  EXPECT_EQ(train::read_manifest(dir + "/two").back().step, 6);
  // 20 KB buckets: several all-reduces, each started by the backward pass itself.
  EXPECT_GT(b[3]["allreduce"]["buckets"].get<int>(), 3);
  EXPECT_EQ(b[3]["allreduce"]["started_in_backward"], b[3]["allreduce"]["buckets"]);

  // Two ranks accumulating two micro-batches of 1: the overlapped reduce sees the accumulated gradient.
  auto acc = test::run_ropelab("launch --nproc 2 --master-port " + std::to_string(free_port()) + " -- train " + flags +
                               " --batch-size 1 --grad-accum 2 --dist-bucket-mb 0.02 --out " + dir + "/acc");
  ASSERT_EQ(acc.exit_code, 0) << acc.output;
  const auto c = io::read_jsonl(dir + "/acc/metrics.jsonl");
  ASSERT_EQ(c.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(a[i]["loss"].get<double>(), c[i]["loss"].get<double>(), 1e-5) << i;
}

TEST(Distributed, AKilledRankMakesTheOthersExitWithinTheTimeout) {
  const auto dir = test::scratch_dir();
  const auto flags = "train " + test::tiny_flags(test::tiny_data(dir)) +
                     " --max-steps 100000 --checkpoints every:1 --dist-timeout 20 --fault-kill-at 1:8 --out " + dir + "/run";
  const int port = free_port() + 1;
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t r0 = spawn_rank(flags, 0, 2, port, dir + "/rank0.log");
  const pid_t r1 = spawn_rank(flags, 1, 2, port, dir + "/rank1.log");
  int s1 = 0, s0 = 0;
  ::waitpid(r1, &s1, 0);
  ::waitpid(r0, &s0, 0);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(WIFSIGNALED(s1) && WTERMSIG(s1) == SIGKILL) << "rank 1 should have killed itself";
  EXPECT_TRUE(WIFEXITED(s0) && WEXITSTATUS(s0) != 0) << io::read_file(dir + "/rank0.log");
  EXPECT_LT(secs, 20 + 30) << "rank 0 did not stop within the collective timeout";
  EXPECT_NE(io::read_file(dir + "/rank0.log").find("rank 0: gradient all-reduce failed"), std::string::npos)
      << io::read_file(dir + "/rank0.log");
  for (const auto& e : train::read_manifest(dir + "/run"))  // nothing half-written is listed
    EXPECT_EQ(train::load_model(train::checkpoints_dir(dir + "/run") + "/" + e.file).state["step"], e.step);
}

TEST(Distributed, LauncherNamesTheRankThatFailed) {
  const auto dir = test::scratch_dir();
  auto r = test::run_ropelab("launch --nproc 2 --master-port " + std::to_string(free_port() + 2) + " -- train " +
                             test::tiny_flags(test::tiny_data(dir)) +
                             " --max-steps 100000 --dist-timeout 20 --fault-kill-at 1:3 --out " + dir + "/run");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("launch: rank 1 was killed by signal 9"), std::string::npos) << r.output;
}

// Buckets start in index order even when autograd finishes them in another:
// here the graph makes p0's gradient (bucket 1, buckets being filled in
// reverse parameter order) arrive before p1's (bucket 0), so bucket 1 waits
// for bucket 0, and both still start inside backward. With Gloo on one rank,
// in this process; the all-reduce of one rank leaves the gradients as they are.
TEST(Distributed, BucketsStartInIndexOrderWhateverOrderHooksFire) {
  train::DistEnv env;
  env.master_port = free_port() + 5;
  train::DataParallel dp(env, at::Device(at::kCPU), std::chrono::milliseconds(20000));
  auto p0 = torch::ones({4}, torch::requires_grad()), p1 = torch::ones({4}, torch::requires_grad());
  dp.attach({p0, p1}, /*bucket_bytes=*/16);  // one parameter per bucket: bucket 0 = p1, bucket 1 = p0
  std::vector<int> arrived;  // which gradient autograd delivered first: the premise of the test
  p0.register_hook([&](const at::TensorBase&) { arrived.push_back(0); });
  p1.register_hook([&](const at::TensorBase&) { arrived.push_back(1); });
  dp.overlap_next_backward();
  const auto a = (p1 * 2).sum();  // made first: its gradient is computed last
  const auto b = (p0 * 3).sum();
  (a + b).backward();
  ASSERT_EQ(arrived, (std::vector<int>{0, 1}));  // bucket 1 was full before bucket 0
  const auto stats = dp.finish_gradients();
  EXPECT_EQ(stats.buckets, 2);
  EXPECT_EQ(stats.started_in_backward, 2);
  EXPECT_EQ(stats.start_order, (std::vector<int>{0, 1}));
  EXPECT_TRUE(torch::allclose(p0.grad(), torch::full({4}, 3.0)));
  EXPECT_TRUE(torch::allclose(p1.grad(), torch::full({4}, 2.0)));
}

// SIGTERM to the launcher (as SLURM or a user's kill sends it) reaches every
// rank: they stop after the same step, rank 0 saves it, and the launcher
// reports an interruption (130), not a failed rank.
TEST(Distributed, ASignalToTheLauncherStopsEveryRankCleanly) {
  const auto dir = test::scratch_dir();
  const pid_t pid = test::spawn_ropelab("launch --nproc 2 --master-port " + std::to_string(free_port() + 4) + " -- train " +
                                            test::tiny_flags(test::tiny_data(dir)) +
                                            " --max-steps 100000 --checkpoints list:100000 --dist-timeout 20 --out " +
                                            dir + "/run",
                                        dir + "/launch.log");
  test::wait_until([&] { return test::jsonl_records(dir + "/run/metrics.jsonl") >= 3; }, 60);
  const int status = test::terminate_and_wait(pid);
  const std::string log = io::read_file(dir + "/launch.log");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << log;
  EXPECT_EQ(log.find("launch: rank"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped by a signal after saving step"), std::string::npos) << log;
  ASSERT_FALSE(train::read_manifest(dir + "/run").empty());
  EXPECT_GE(train::read_manifest(dir + "/run").back().step, 3);
}

// SIGTERM to one rank only: the stop flag travels with the loss all-reduce,
// so every rank leaves after the same step and rank 0 saves it (no rank is
// left waiting in the next step's all-reduce).
TEST(Distributed, ASignalToOneRankStopsAllRanksAfterTheSameStep) {
  const auto dir = test::scratch_dir();
  const auto flags = "train " + test::tiny_flags(test::tiny_data(dir)) +
                     " --max-steps 100000 --checkpoints list:100000 --dist-timeout 20 --fault-kill-at 1:8:TERM --out " +
                     dir + "/run";
  const int port = free_port() + 3;
  const pid_t r0 = spawn_rank(flags, 0, 2, port, dir + "/rank0.log");
  const pid_t r1 = spawn_rank(flags, 1, 2, port, dir + "/rank1.log");
  int s1 = 0, s0 = 0;
  ::waitpid(r1, &s1, 0);
  ::waitpid(r0, &s0, 0);
  const std::string log0 = io::read_file(dir + "/rank0.log");
  EXPECT_TRUE(WIFEXITED(s0) && WEXITSTATUS(s0) == 130) << log0;
  EXPECT_TRUE(WIFEXITED(s1) && WEXITSTATUS(s1) == 130) << io::read_file(dir + "/rank1.log");
  EXPECT_NE(log0.find("stopped by a signal after saving step 9"), std::string::npos) << log0;
  ASSERT_FALSE(train::read_manifest(dir + "/run").empty());
  EXPECT_EQ(train::read_manifest(dir + "/run").back().step, 9);
}

// Under torchrun its agent may host the rendezvous store on MASTER_PORT and
// then sets TORCHELASTIC_USE_AGENT_STORE=True: ropelab's ranks join that
// store as clients (a second server on the port would fail to bind). Two ranks started
// by torchrun train exactly like one rank with the double batch. Runs where
// torchrun exists (the PyTorch 2.x world of scripts/torch2); skipped elsewhere.
TEST(Distributed, TorchrunStartsTwoRanksThatTrainLikeOne) {
  if (test::run_shell("command -v torchrun >/dev/null 2>&1").exit_code != 0)
    GTEST_SKIP() << "torchrun is not installed here (it is in scripts/torch2's world)";
  const auto dir = test::scratch_dir();
  const auto flags = test::tiny_flags(test::tiny_data(dir)) + " --max-steps 4 --checkpoints every:4";
  auto one = test::run_ropelab("train " + flags + " --batch-size 4 --out " + dir + "/one");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  // torchrun's static rendezvous: its agent hosts the store. The wrapper only
  // makes that store the classic server where libtorch lacks libuv.
  auto two = test::run_shell("python3 " ROPELAB_SOURCE_DIR "/tests/torchrun_nolibuv.py --nnodes 1 --nproc-per-node 2 "
                             "--master-addr 127.0.0.1 --master-port " + std::to_string(free_port() + 6) +
                             " --no-python " + ROPELAB_BIN + " train " + flags + " --batch-size 2 --out " + dir +
                             "/two 2>&1");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto a = io::read_jsonl(dir + "/one/metrics.jsonl"), b = io::read_jsonl(dir + "/two/metrics.jsonl");
  ASSERT_EQ(b.size(), 4u) << two.output;
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(a[i]["loss"].get<double>(), b[i]["loss"].get<double>(), 1e-5) << i;
  EXPECT_EQ(io::read_json(dir + "/two/config.json")["world_size"], 2);
}
