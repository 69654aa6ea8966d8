// What built this program and what it runs on, for every record it writes:
// the same seed reproduces a run only with the same build, BLAS and threads
// (docs/reproducibility.md), so a record that lacks them names no run.
// Plain C++: the libtorch side (version, threads, device) is added by
// train/fingerprint.h.
#pragma once
#include <nlohmann/json.hpp>

namespace ropelab {

// The source tree's commit when this binary was built ("unknown" without
// git metadata), and whether it had uncommitted changes ("true", "false",
// "unknown"); generated at build time by cmake/git_commit.cmake.
const char* build_commit();
const char* build_commit_dirty();

// {commit, commit_dirty, version, compiler, cpu, blas{library, config,
// core, parallel, threads}, allocator{..} (common/allocator.h)}: the BLAS that is loaded in this process (read
// from OpenBLAS itself where it is the one; "unknown" otherwise).
nlohmann::json host_fingerprint();

}  // namespace ropelab
