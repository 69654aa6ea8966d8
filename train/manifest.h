// RUN_DIR/checkpoints/manifest.json: which checkpoint files of a run are
// complete. Plain C++ (no torch), so the reader can be fuzzed and tested
// without libtorch; train/checkpoint.{h,cpp} write it.
//   {"checkpoints": [{"step": N, "file": "step_XXXXXXXX.pt", "tokens_seen": N}, ...]}
#pragma once
#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/io.h"

namespace ropelab::train {

struct CheckpointEntry {
  int64_t step = 0;
  std::string file;        // relative to RUN_DIR/checkpoints
  int64_t tokens_seen = 0;
};

// The entries a manifest lists, sorted by step; `path` names it in errors.
inline std::vector<CheckpointEntry> parse_manifest(const nlohmann::json& j, const std::string& path) {
  std::vector<CheckpointEntry> out;
  // step and tokens_seen must be JSON integers: get<int64_t> of 1e300 is an undefined cast.
  auto integer = [&](const nlohmann::json& e, const char* key) {
    if (!e.at(key).is_number_integer())
      throw Error(path + ": malformed manifest (checkpoint " + std::to_string(out.size()) + ": \"" + key +
                  "\" is not an integer)");
    return e.at(key).get<int64_t>();
  };
  try {
    for (const auto& e : j.at("checkpoints"))
      out.push_back({integer(e, "step"), e.at("file").get<std::string>(), integer(e, "tokens_seen")});
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": malformed manifest (" + e.what() + ")");
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

// Reads the manifest at `path`; none there means no checkpoints yet.
inline std::vector<CheckpointEntry> read_manifest_file(const std::string& path) {
  if (!io::exists(path)) return {};
  return parse_manifest(io::read_json(path), path);
}

}  // namespace ropelab::train
