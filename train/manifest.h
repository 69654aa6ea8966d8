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
  try {
    for (const auto& e : j.at("checkpoints"))
      out.push_back({e.at("step").get<int64_t>(), e.at("file").get<std::string>(), e.at("tokens_seen").get<int64_t>()});
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
