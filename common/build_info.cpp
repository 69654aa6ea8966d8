#include "common/build_info.h"

#include <dlfcn.h>

#include <fstream>
#include <string>

#include "common/allocator.h"

namespace ropelab {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

// OpenBLAS answers for itself; any other BLAS is named by its library when
// one of the usual entry points resolves, else "unknown".
nlohmann::json blas() {
  nlohmann::json b = {{"library", "unknown"}, {"config", nullptr}, {"core", nullptr}, {"parallel", nullptr},
                      {"threads", nullptr}};
  Dl_info info{};
  if (void* gemm = dlsym(RTLD_DEFAULT, "sgemm_"); gemm && dladdr(gemm, &info) && info.dli_fname)
    b["library"] = info.dli_fname;
  using Str = char* (*)();
  using Int = int (*)();
  if (auto config = reinterpret_cast<Str>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    b["config"] = config();
    if (auto core = reinterpret_cast<Str>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) b["core"] = core();
    if (auto par = reinterpret_cast<Int>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"))) {
      static const char* kinds[] = {"sequential", "pthreads", "openmp"};
      const int p = par();
      b["parallel"] = p >= 0 && p <= 2 ? kinds[p] : std::to_string(p);
    }
    if (auto threads = reinterpret_cast<Int>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) b["threads"] = threads();
    if (dladdr(reinterpret_cast<void*>(config), &info) && info.dli_fname) b["library"] = info.dli_fname;
  }
  return b;
}

}  // namespace

nlohmann::json host_fingerprint() {
  return {{"commit", build_commit()},
          {"commit_dirty", build_commit_dirty()},
          {"version", ROPELAB_VERSION},
          {"compiler", std::string(__VERSION__)},
          {"cpu", cpu_model()},
          {"blas", blas()},
          {"allocator", allocator_settings()}};
}

}  // namespace ropelab
