// Data parallelism over libtorch's c10d: Gloo on the CPU, NCCL on CUDA, one
// code path. Rendezvous as torchrun and SLURM do it: RANK / WORLD_SIZE /
// LOCAL_RANK / MASTER_ADDR / MASTER_PORT (or SLURM_PROCID / SLURM_NTASKS /
// SLURM_LOCALID) through a TCPStore hosted by rank 0 — or, under torchrun
// (TORCHELASTIC_USE_AGENT_STORE=True), through the store its agent already
// hosts on MASTER_PORT, as PyTorch's own workers do.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ropelab::train {

struct DistEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // torchrun's agent hosts the store: every rank is a client, and keys live
  // under /worker/attempt_<TORCHELASTIC_RESTART_COUNT>.
  bool agent_store = false;
  int restart_count = 0;
};
// Reads the environment; world = 1 when none of the variables is set.
// Throws Error naming a malformed or inconsistent variable.
DistEnv dist_env_from_environment();

class DataParallel {
 public:
  DataParallel(const DistEnv& env, const at::Device& device, std::chrono::milliseconds timeout);
  ~DataParallel();
  int rank() const { return env_.rank; }
  int world() const { return env_.world; }
  bool is_main() const { return env_.rank == 0; }

  // Rank 0's values everywhere (weights after init or resume).
  void broadcast_from_main(const std::vector<at::Tensor>& tensors);
  // Gradient averaging overlapped with the backward pass, as DDP's reducer
  // does: parameters go into flat buckets of about `bucket_bytes`, in reverse
  // order (the order backward produces their gradients); a hook on each
  // parameter copies its final gradient (accumulated micro-batches included)
  // into its bucket, and a full bucket's all-reduce starts while backward
  // goes on, as soon as it and every bucket before it are full (the same
  // order of collectives on every rank). Call attach once, overlap_next_backward before the
  // last micro-batch's backward, finish_gradients after it: it starts any
  // bucket still waiting (parameters with no gradient count as zeros), waits
  // for all, and writes the mean over ranks into each .grad.
  void attach(const std::vector<at::Tensor>& params, int64_t bucket_bytes = 25 << 20);
  void overlap_next_backward();
  struct ReduceStats {
    int buckets = 0, started_in_backward = 0;
    std::vector<int> start_order;  // bucket indices in the order their all-reduces started
  };
  ReduceStats finish_gradients();
  std::vector<double> sum(const std::vector<double>& values);  // element-wise sums over ranks, in one collective
  void barrier();

 private:
  void collective(const std::string& what, const std::function<void()>& op);
  void on_gradient(size_t bucket, size_t slot, const at::Tensor& grad);
  void start_bucket(size_t bucket);
  struct Bucket;
  std::vector<Bucket> buckets_;
  bool armed_ = false;
  // Buckets started this step, in order. They start in index order, so
  // bucket start_order_.size() is the next to go.
  std::vector<int> start_order_;
  DistEnv env_;
  at::Device device_;
  struct Backend;
  std::unique_ptr<Backend> backend_;
};

}  // namespace ropelab::train
