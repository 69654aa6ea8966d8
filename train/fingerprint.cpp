#include "train/fingerprint.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "common/build_info.h"

namespace ropelab::train {

nlohmann::json build_fingerprint(const std::string& device) {
  auto f = host_fingerprint();
  f["libtorch"] = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                  std::to_string(TORCH_VERSION_PATCH);
#ifdef ROPELAB_CUDA
  f["built_with_cuda"] = true;
#else
  f["built_with_cuda"] = false;
#endif
  f["device"] = device;
  f["threads"] = at::get_num_threads();
  f["interop_threads"] = at::get_num_interop_threads();
  return f;
}

}  // namespace ropelab::train
