// Provenance fields every evaluation record carries: which run a checkpoint
// belongs to, and the software versions that measured it.
#pragma once
#include <torch/version.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/run_dir.h"

namespace ropelab::eval {

// "ropelab:RUN" for RUN_DIR/checkpoints/step_X.pt.
inline std::string model_id_of(const std::string& ckpt_path) {
  return "ropelab:" + std::filesystem::path(rundir::run_of_checkpoint(ckpt_path)).filename().string();
}

inline nlohmann::json versions() {
  return {{"ropelab", ROPELAB_VERSION},
          {"libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR)}};
}

}  // namespace ropelab::eval
