// Reading a Hugging Face config.json into a ModelConfig: plain JSON, no torch
// (defined in model/config.cpp), so the parser of this downloaded file can be
// fuzzed and tested without libtorch. model/hf_format.h writes the layout.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace ropelab::model {

// The ModelConfig a HF config.json describes; throws Error naming the key
// that is missing or has a value ropelab's model cannot express.
ModelConfig model_config_from_hf(const nlohmann::json& hf, const std::string& where);

}  // namespace ropelab::model
