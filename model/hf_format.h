// Hugging Face layouts of ropelab's decoders, both ways: released models
// (Pythia, Llama, Qwen2, Mistral) load exactly, and ropelab's models export
// so transformers, lm-eval-harness, kvpress and RULER can load them.
//
//   norm = rmsnorm, mlp = swiglu    -> LlamaForCausalLM   (model.layers.N.self_attn.q_proj, ...)
//                                      Qwen2ForCausalLM   (the same names; q/k/v biases, no o bias)
//                                      MistralForCausalLM (the same names; sliding window)
//   norm = layernorm, mlp = gelu    -> GPTNeoXForCausalLM (gpt_neox.layers.N.attention.query_key_value
//                                      fused per head, biases, parallel residual, partial rotary)
// All use the rotate-half RoPE layout ropelab uses, so q/k rows need no
// permutation. A configuration with no exact HF counterpart (partial rotary
// on Llama, grouped KV heads on GPT-NeoX, mixed norm/MLP) is refused with
// the field named rather than exported approximately; config.json keys
// ropelab cannot express are refused on import (model/hf_config.h).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "model/hf_config.h"
#include "model/transformer.h"

namespace ropelab::model {

// The HF class a ModelConfig exports as; throws Error naming the field that
// has no counterpart.
std::string hf_architecture(const ModelConfig& cfg);

// config.json of the HF layout.
nlohmann::json hf_config(const ModelConfig& cfg);

// Tensors under their HF names (CPU, contiguous, in the model's dtype).
std::map<std::string, at::Tensor> to_hf_tensors(TransformerImpl& m);
// Copies HF-named tensors into m (converting dtype). Every parameter must be
// present with its shape; unknown names, and non-zero biases where m has
// none, throw Error naming the tensor and `file_of` its file (else `where`).
// `copied(name)` is called once a tensor is in m (the loader drops its pages then).
void load_hf_tensors(TransformerImpl& m, const std::map<std::string, at::Tensor>& tensors, const std::string& where,
                     const std::map<std::string, std::string>& file_of = {},
                     const std::function<void(const std::string&)>& copied = nullptr);

// DIR/config.json + model.safetensors + ropelab_reference.json (ropelab's
// logits on a fixed input, for checking other loaders) (+ tokenizer.model and
// tokenizer_config.json when tokenizer_model is given), written to a
// temporary folder and renamed into place. DIR must not exist yet.
void export_hf(TransformerImpl& m, const std::string& dir, const std::string& tokenizer_model);

// Builds the model a HF directory describes and loads its weights from
// model.safetensors or the shards model.safetensors.index.json lists, memory-
// mapped and copied tensor by tensor into a model built in `dtype`:
// "float32", "bfloat16", "float16", or "auto" (the weights' own dtype), so
// the peak is one copy of the weights in that dtype. In eval mode. A dtype
// the CPU cannot compute in is refused (auto falls back to float32) unless
// `to_compute` is false (export only rewrites the weights).
Transformer import_hf(const std::string& dir, const std::string& dtype = "float32", bool to_compute = true);

// The scalar type a --dtype word names ("auto" resolved against `stored`,
// a safetensors dtype name); throws Error naming the word.
at::ScalarType eval_dtype(const std::string& word, const std::string& stored);

// Whether this libtorch computes the model's operations in `t` on the CPU
// (libtorch 1.13 has no float16 LayerNorm or matmul there; 2.x has).
bool cpu_computes_in(at::ScalarType t);

}  // namespace ropelab::model
