// The build fingerprint every record and checkpoint carries: the host side
// (common/build_info.h: commit, compiler, CPU, BLAS) plus libtorch's version
// and the threads and device this process computes with.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace ropelab::train {

// {commit, commit_dirty, version, compiler, cpu, blas{..}, libtorch, cuda
// built_with_cuda, device, threads,
// interop_threads}. Threads are read now: call it after they are set.
nlohmann::json build_fingerprint(const std::string& device);

}  // namespace ropelab::train
