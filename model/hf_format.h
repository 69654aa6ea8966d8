// Hugging Face layouts of ropelab's decoders, so transformers, lm-eval-harness,
// kvpress and RULER can load ropelab models and ropelab can start from theirs.
//
//   norm = rmsnorm, mlp = swiglu    -> LlamaForCausalLM  (model.layers.N.self_attn.q_proj, ...)
//   norm = layernorm, mlp = gelu    -> GPTNeoXForCausalLM (gpt_neox.layers.N.attention.query_key_value,
//                                      sequential residual, zero biases: ropelab's linears have none)
// Both use the rotate-half RoPE layout ropelab uses, so q/k rows need no
// permutation. A configuration with no exact HF counterpart (partial rotary
// on Llama, grouped KV heads on GPT-NeoX, mixed norm/MLP) is refused with
// the field named rather than exported approximately.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "model/hf_config.h"
#include "model/transformer.h"

namespace ropelab::model {

// "LlamaForCausalLM" or "GPTNeoXForCausalLM"; throws Error naming the field
// that has no counterpart in either.
std::string hf_architecture(const ModelConfig& cfg);

// config.json of the HF layout.
nlohmann::json hf_config(const ModelConfig& cfg);
// model_config_from_hf (reading config.json) is in model/hf_config.h.

// Tensors under their HF names (float32, CPU, contiguous).
std::map<std::string, at::Tensor> to_hf_tensors(TransformerImpl& m);
// Copies HF-named tensors into m. Every parameter must be present with its
// shape; unknown names, and non-zero biases (which ropelab cannot represent),
// throw Error naming the tensor.
void load_hf_tensors(TransformerImpl& m, const std::map<std::string, at::Tensor>& tensors, const std::string& where);

// DIR/config.json + model.safetensors + ropelab_reference.json (ropelab's
// logits on a fixed input, for checking other loaders) (+ tokenizer.model and
// tokenizer_config.json when tokenizer_model is given), written to a
// temporary folder and renamed into place. DIR must not exist yet.
void export_hf(TransformerImpl& m, const std::string& dir, const std::string& tokenizer_model);
// Builds the model a HF directory describes and loads its weights.
Transformer import_hf(const std::string& dir);

}  // namespace ropelab::model
