// libFuzzer entry point of one target; ROPELAB_FUZZ_TARGET names it (fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ropelab::fuzz::Target& t = ropelab::fuzz::target(ROPELAB_FUZZ_TARGET);
  ropelab::fuzz::run_one(t, data, size);
  return 0;
}
