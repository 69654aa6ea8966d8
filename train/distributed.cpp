#include "train/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <torch/version.h>

#include <cstdlib>

#include "common/error.h"

namespace ropelab::train {
namespace {

// The rendezvous store hosted by rank 0. libtorch >= 2.4 asks for its libuv
// server by default and refuses when it was built without libuv (Debian's
// 2.6 is; the official wheels are not), so that case falls back to the
// classic socket server, which every 2.x build has.
c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& addr, c10d::TCPStoreOptions so) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 2)
  try {
    return c10::make_intrusive<c10d::TCPStore>(addr, so);
  } catch (const std::exception& e) {
    if (!so.useLibUV || std::string(e.what()).find("libuv") == std::string::npos) throw;
    so.useLibUV = false;
  }
#endif
  return c10::make_intrusive<c10d::TCPStore>(addr, so);
}

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
  if (const char* a = std::getenv("TORCHELASTIC_USE_AGENT_STORE")) e.agent_store = std::string(a) == "True";
  bool unused = false;
  e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, &unused);
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
  // Starts an all-reduce (sum) and returns what waits for it: the work
  // handle's type differs between libtorch 1.x and 2.x, the calls do not.
  std::function<std::function<void()>(std::vector<at::Tensor>&)> allreduce_start;
  std::function<void()> barrier;
};

struct DataParallel::Bucket {
  std::vector<at::Tensor> params;   // in the order their gradients arrive
  std::vector<int64_t> offsets;     // of each parameter in `flat`
  std::vector<at::Tensor> flat;     // one buffer: the bucket's gradients
  std::vector<bool> filled;
  size_t ready = 0;
  std::function<void()> wait;       // set once the all-reduce has started
};

DataParallel::DataParallel(const DistEnv& env, const at::Device& device, std::chrono::milliseconds timeout)
    : env_(env), device_(device), backend_(std::make_unique<Backend>()) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0 && !env.agent_store;
  so.numWorkers = env.world;
  so.timeout = timeout;
  try {
    backend_->store = make_tcp_store(env.master_addr, so);
    if (env.agent_store)
      backend_->store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count),
                                                               backend_->store);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": rendezvous at " + env.master_addr + ":" +
                std::to_string(env.master_port) + " failed: " + e.what());
  }
  auto wire_ops = [this](auto pg) {
    backend_->allreduce_sum = [pg](std::vector<at::Tensor>& t) { pg->allreduce(t)->wait(); };
    backend_->allreduce_start = [pg](std::vector<at::Tensor>& t) -> std::function<void()> {
      auto work = pg->allreduce(t);
      return [work] { work->wait(); };
    };
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

void DataParallel::attach(const std::vector<at::Tensor>& params, int64_t bucket_bytes) {
  buckets_.clear();
  int64_t bytes = 0;  // of the bucket being filled
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    const at::Tensor& p = *it;
    if (!p.requires_grad()) continue;
    if (buckets_.empty() || (bytes > 0 && bytes + int64_t(p.nbytes()) > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    bytes += p.nbytes();
    auto& b = buckets_.back();
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + b.params.back().numel());
    b.params.push_back(p);
  }
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    auto& b = buckets_[bi];
    const int64_t n = b.offsets.back() + b.params.back().numel();
    b.flat = {at::zeros({n}, b.params[0].options().requires_grad(false))};
    b.filled.assign(b.params.size(), false);
    for (size_t i = 0; i < b.params.size(); ++i)
      // TensorBase: what libtorch 1.13 and 2.x both hand a hook.
      b.params[i].register_hook([this, bi, i](const at::TensorBase& grad) { on_gradient(bi, i, at::Tensor(grad)); });
  }
}

void DataParallel::overlap_next_backward() {
  armed_ = true;
  start_order_.clear();
  for (auto& b : buckets_) {
    b.filled.assign(b.params.size(), false);
    b.ready = 0;
    b.wait = nullptr;
  }
}

// Called by autograd as each parameter's gradient of this backward is ready,
// before it is added to .grad: the final value is .grad (earlier
// micro-batches) plus this one.
void DataParallel::on_gradient(size_t bucket, size_t slot, const at::Tensor& grad) {
  if (!armed_) return;
  auto& b = buckets_[bucket];
  if (b.filled[slot]) return;
  const auto& p = b.params[slot];
  auto dst = b.flat[0].narrow(0, b.offsets[slot], p.numel());
  const at::Tensor g = grad.detach().reshape({-1});
  if (p.grad().defined()) dst.copy_(p.grad().detach().reshape({-1}) + g);
  else dst.copy_(g);
  b.filled[slot] = true;
  ++b.ready;
  // Collectives must be issued in the same order on every rank (NCCL pairs
  // them by order), so a full bucket starts only once every bucket before it
  // has: buckets go out in index order, as DDP's reducer sends them, even if
  // hooks complete in another order.
  for (size_t next = start_order_.size(); next < buckets_.size() && buckets_[next].ready == buckets_[next].params.size();
       ++next)
    start_bucket(next);
}

void DataParallel::start_bucket(size_t bucket) {
  auto& b = buckets_[bucket];
  start_order_.push_back(static_cast<int>(bucket));
  collective("gradient all-reduce", [&] { b.wait = backend_->allreduce_start(b.flat); });
}

DataParallel::ReduceStats DataParallel::finish_gradients() {
  armed_ = false;
  ReduceStats stats{static_cast<int>(buckets_.size()), static_cast<int>(start_order_.size()), {}};
  for (size_t bi = start_order_.size(); bi < buckets_.size(); ++bi) {
    auto& b = buckets_[bi];
    // A parameter whose hook did not fire this step: its .grad as it stands (or zeros).
    for (size_t i = 0; i < b.params.size(); ++i)
      if (!b.filled[i]) {
        auto dst = b.flat[0].narrow(0, b.offsets[i], b.params[i].numel());
        if (b.params[i].grad().defined()) dst.copy_(b.params[i].grad().detach().reshape({-1}));
        else dst.zero_();
      }
    start_bucket(bi);
  }
  stats.start_order = start_order_;
  for (auto& b : buckets_) {
    collective("gradient all-reduce", [&] { b.wait(); });
    b.flat[0].div_(double(env_.world));
    for (size_t i = 0; i < b.params.size(); ++i) {
      auto& p = b.params[i];
      auto avg = b.flat[0].narrow(0, b.offsets[i], p.numel()).view_as(p);
      if (p.grad().defined()) p.mutable_grad().detach().copy_(avg);
      else p.mutable_grad() = avg.clone();
    }
    b.wait = nullptr;
  }
  return stats;
}

std::vector<double> DataParallel::sum(const std::vector<double>& values) {
  std::vector<at::Tensor> t{at::tensor(values, at::TensorOptions().dtype(at::kDouble)).to(device_)};
  collective("loss all-reduce", [&] { backend_->allreduce_sum(t); });
  const auto host = t[0].cpu();
  return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
}

void DataParallel::barrier() {
  collective("barrier", [&] { backend_->barrier(); });
}

}  // namespace ropelab::train
