// Reading a Hugging Face config.json into a ModelConfig: plain JSON, no torch,
// so the parser of this downloaded file can be fuzzed and tested without
// libtorch. model/hf_format.h reads and writes the weights.
//
// Loaded exactly: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM
// (QK-norm), Gemma3ForCausalLM (text), MistralForCausalLM, GPTNeoXForCausalLM (Pythia), with their
// biases, norm epsilons, head_dim, grouped KV heads, partial rotary
// (GPT-NeoX), parallel residual, Mistral's sliding window, layer_types
// (full and sliding layers) and every rope type of transformers
// (model/rope_methods.h). Anything else a config asks for is refused with its key named.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"

namespace ropelab::model {

// The ModelConfig a HF config.json describes; throws Error naming the key
// that is missing or has a value ropelab's model cannot express.
ModelConfig model_config_from_hf(const nlohmann::json& hf, const std::string& where);

// Each model_type ropelab loads and exports, with its HF class.
const std::vector<std::pair<std::string, std::string>>& hf_model_types();

// The HF class the file names (architectures[0], else from model_type).
std::string hf_architecture_of(const nlohmann::json& hf);

}  // namespace ropelab::model
