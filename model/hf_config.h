// Reading a Hugging Face config.json into a ModelConfig: plain JSON, no torch,
// so the parser of this downloaded file can be fuzzed and tested without
// libtorch. model/hf_format.h reads and writes the weights.
//
// Loaded exactly: LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM,
// GPTNeoXForCausalLM (Pythia), with their biases, norm epsilons, head_dim,
// grouped KV heads, partial rotary (GPT-NeoX), parallel residual, Mistral's
// sliding window and the rope_scaling types linear, dynamic, yarn, llama3,
// longrope. Anything else a config asks for is refused with its key named.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace ropelab::model {

// The ModelConfig a HF config.json describes; throws Error naming the key
// that is missing or has a value ropelab's model cannot express.
ModelConfig model_config_from_hf(const nlohmann::json& hf, const std::string& where);

// The HF class the file names (architectures[0], else from model_type).
std::string hf_architecture_of(const nlohmann::json& hf);

}  // namespace ropelab::model
