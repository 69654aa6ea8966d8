// The fuzz targets: each runs one of ropelab's readers of outside bytes on
// `bytes`, exactly as a command would read such a file, and lets the reader's
// ropelab::Error out. The libFuzzer entry points (fuzz_main.cpp) and the
// regression replay (test_regressions.cpp) both call these; anything other
// than success or a ropelab::Error whose message is one line naming the
// file (another exception, a sanitizer report, a hang, a huge allocation)
// is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ropelab::fuzz {

struct Target {
  const char* name;
  void (*run)(const std::string& bytes);
};
const std::vector<Target>& targets();
const Target& target(const std::string& name);  // aborts on an unknown name

// Runs one input: returns "" on success, the Error's message when the reader
// refused it; aborts (a finding) when the message is not one line naming the
// file. Other exceptions propagate (std::terminate under libFuzzer).
std::string run_one(const Target& t, const uint8_t* data, size_t size);

}  // namespace ropelab::fuzz
