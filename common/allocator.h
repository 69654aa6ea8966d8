// How ropelab's processes use glibc's allocator, in one place: freed tensor
// memory stays in the process (no mmap for large blocks, no trimming of the
// heap's top). By default glibc serves large blocks with mmap and unmaps them
// on free, so every training step faulted its activation buffers in afresh: a
// quarter of a one-thread CPU step was kernel time (docs/performance.md). On
// GPUs the caching allocator does this for device memory.
// The benchmark gives its peers the same settings through the environment
// (allocator_environment()), so a speed ratio compares code, not allocators.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace ropelab {

inline constexpr int kMallocMmapMax = 0;                    // M_MMAP_MAX: never mmap a block
inline constexpr long kMallocTrimThreshold = 1L << 30;      // M_TRIM_THRESHOLD: keep up to 1 GiB free at the top

// Applies the settings to this process (mallopt).
void keep_freed_memory();
// {"mmap_max": 0, "trim_threshold": 1073741824}: what every record of a
// ropelab process says it ran with.
nlohmann::json allocator_settings();
// The same settings as glibc's environment variables, for other processes:
// "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824".
std::string allocator_environment();

}  // namespace ropelab
