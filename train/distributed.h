// Data parallelism over libtorch's c10d: Gloo on the CPU, NCCL on CUDA, one
// code path. Rendezvous as torchrun and SLURM do it: RANK / WORLD_SIZE /
// LOCAL_RANK / MASTER_ADDR / MASTER_PORT (or SLURM_PROCID / SLURM_NTASKS /
// SLURM_LOCALID) through a TCPStore hosted by rank 0.
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
  // Replaces each gradient by its mean over ranks, in flat buckets of about
  // `bucket_bytes` so a few large collectives replace many small ones.
  void average_gradients(const std::vector<at::Tensor>& params, int64_t bucket_bytes = 25 << 20);
  double mean(double value);  // a scalar averaged over ranks (the logged loss)
  void barrier();

 private:
  void collective(const std::string& what, const std::function<void()>& op);
  DistEnv env_;
  at::Device device_;
  struct Backend;
  std::unique_ptr<Backend> backend_;
};

}  // namespace ropelab::train
