#include "common/allocator.h"

#include <malloc.h>

namespace ropelab {

void keep_freed_memory() {
  mallopt(M_MMAP_MAX, kMallocMmapMax);
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(kMallocTrimThreshold));
}

nlohmann::json allocator_settings() {
  return {{"allocator", "glibc"}, {"mmap_max", kMallocMmapMax}, {"trim_threshold", kMallocTrimThreshold}};
}

std::string allocator_environment() {
  return "MALLOC_MMAP_MAX_=" + std::to_string(kMallocMmapMax) +
         " MALLOC_TRIM_THRESHOLD_=" + std::to_string(kMallocTrimThreshold);
}

}  // namespace ropelab
