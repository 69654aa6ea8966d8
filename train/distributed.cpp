#include "train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>

#include "common/error.h"

namespace ropelab::train {
namespace {

int env_int(const char* name, int fallback, bool* found) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || x < 0) throw Error(std::string("environment variable ") + name + "=\"" + v + "\" is not a non-negative integer");
  *found = true;
  return static_cast<int>(x);
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  bool any = false;
  e.rank = env_int("RANK", env_int("SLURM_PROCID", 0, &any), &any);
  e.world = env_int("WORLD_SIZE", env_int("SLURM_NTASKS", 1, &any), &any);
  e.local_rank = env_int("LOCAL_RANK", env_int("SLURM_LOCALID", 0, &any), &any);
  if (const char* a = std::getenv("MASTER_ADDR")) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500, &any);
  if (e.world < 1 || e.rank >= e.world)
    throw Error("RANK=" + std::to_string(e.rank) + " is not below WORLD_SIZE=" + std::to_string(e.world));
  return e;
}

// The c10d backend behind three operations. ProcessGroupGloo/NCCL are
// ProcessGroups in libtorch 1.x and Backends in 2.x; their collective calls
// are the same, so the concrete class is held and wrapped here.
struct DataParallel::Backend {
  c10::intrusive_ptr<c10d::Store> store;
  std::function<void(std::vector<at::Tensor>&)> allreduce_sum, broadcast0;
  std::function<void()> barrier;
};

DataParallel::DataParallel(const DistEnv& env, const at::Device& device, std::chrono::milliseconds timeout)
    : env_(env), device_(device), backend_(std::make_unique<Backend>()) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = env.world;
  so.timeout = timeout;
  try {
    backend_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": rendezvous at " + env.master_addr + ":" +
                std::to_string(env.master_port) + " failed: " + e.what());
  }
  auto wire_ops = [this](auto pg) {
    backend_->allreduce_sum = [pg](std::vector<at::Tensor>& t) { pg->allreduce(t)->wait(); };
    backend_->broadcast0 = [pg](std::vector<at::Tensor>& t) { pg->broadcast(t)->wait(); };
    backend_->barrier = [pg] { pg->barrier()->wait(); };
  };
  if (device.is_cuda()) {
#if defined(USE_C10D_NCCL)
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    wire_ops(c10::make_intrusive<c10d::ProcessGroupNCCL>(backend_->store, env.rank, env.world, opts));
#else
    throw Error("this build of ropelab has no NCCL (libtorch without USE_C10D_NCCL); use --device cpu for Gloo");
#endif
  } else {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
    wire_ops(c10::make_intrusive<c10d::ProcessGroupGloo>(backend_->store, env.rank, env.world, opts));
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::collective(const std::string& what, const std::function<void()>& op) {
  try {
    op();
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env_.rank) + ": " + what +
                " failed (another rank died, hung past the timeout, or left): " + e.what());
  }
}

void DataParallel::broadcast_from_main(const std::vector<at::Tensor>& tensors) {
  collective("broadcast", [&] {
    for (const auto& t : tensors) {
      std::vector<at::Tensor> one{t.detach()};
      backend_->broadcast0(one);
    }
  });
}

void DataParallel::average_gradients(const std::vector<at::Tensor>& params, int64_t bucket_bytes) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  // Consecutive gradients fill a bucket up to bucket_bytes (at least one each);
  // the bucket is reduced as one flat buffer and copied back.
  for (size_t start = 0, end = 0; start < grads.size(); start = end) {
    int64_t bytes = 0;
    std::vector<at::Tensor> flat_parts;
    while (end < grads.size() && (end == start || bytes + grads[end].nbytes() <= size_t(bucket_bytes))) {
      bytes += grads[end].nbytes();
      flat_parts.push_back(grads[end++].reshape({-1}));
    }
    std::vector<at::Tensor> flat{at::cat(flat_parts)};
    collective("gradient all-reduce", [&] { backend_->allreduce_sum(flat); });
    flat[0].div_(double(env_.world));
    int64_t off = 0;
    for (size_t i = start; i < end; ++i) {
      grads[i].copy_(flat[0].narrow(0, off, grads[i].numel()).view_as(grads[i]));
      off += grads[i].numel();
    }
  }
}

double DataParallel::mean(double value) {
  std::vector<at::Tensor> t{at::full({1}, value, at::TensorOptions().dtype(at::kDouble).device(device_))};
  collective("loss all-reduce", [&] { backend_->allreduce_sum(t); });
  return t[0].item<double>() / env_.world;
}

void DataParallel::barrier() {
  collective("barrier", [&] { backend_->barrier(); });
}

}  // namespace ropelab::train
