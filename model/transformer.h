// A decoder-only RoPE transformer, the whole architecture on one screen:
//   tokens -> embedding -> n_layers x [x + attn(norm1 x); x + mlp(norm2 x)]
//          -> final norm -> LM head (tied to the embedding or not)
// (GPT-NeoX's parallel residual: x + attn(norm1 x) + mlp(norm2 x); Gemma 3's
// sandwich: x + norm(attn(norm1 x)), then h + norm(mlp(norm2 h)), with the
// embedding × √d_model.)
// Layer l's attention is of type cfg.layer_type(l): full layers take the
// forward's RoPE settings (the model's method, or the evaluation's), sliding
// layers plain RoPE at their own θ, nope layers none.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "model/attention.h"
#include "model/config.h"

namespace ropelab::model {

class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear up{nullptr}, gate{nullptr}, down{nullptr};  // gate for SwiGLU and GeGLU
 private:
  bool tanh_gelu_gate_ = false;  // GeGLU (Gemma): gelu(tanh approximation) of the gate, not silu
};
TORCH_MODULE(MLP);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& cfg, int64_t layer);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& pos, const AttentionSettings& s, LayerKV* cache,
                     AttentionProbe* probe);
  torch::nn::AnyModule norm1, norm2;
  torch::nn::AnyModule attn_out_norm, mlp_out_norm;  // sandwich_norms only (Gemma 3)
  Attention attn{nullptr};
  MLP mlp{nullptr};
  bool parallel;  // parallel residual (GPT-NeoX)
};
TORCH_MODULE(Block);

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelConfig& cfg);
  // idx: int64 [B, T] -> logits [B, T, vocab]. With a cache, idx continues
  // the cached sequence (incremental decoding); with a probe, the chosen
  // query rows' attention probabilities are recorded per layer. `settings`
  // (RoPE scaling, query scaling) replaces `attention` for this pass.
  at::Tensor forward(const at::Tensor& idx, KVCache* cache = nullptr, AttentionProbe* probe = nullptr,
                     const AttentionSettings* settings = nullptr);
  // The final-norm hidden states [B, T, d_model] (forward without the LM head).
  at::Tensor hidden(const at::Tensor& idx, KVCache* cache = nullptr, AttentionProbe* probe = nullptr,
                    const AttentionSettings* settings = nullptr);
  // Mean next-token cross-entropy of logits(idx) against targets, in float32.
  // ce_chunk > 0: the head and the loss computed together over that many rows
  // at a time, never holding the whole batch's logits (model/linear_cross_entropy.h).
  at::Tensor loss(const at::Tensor& idx, const at::Tensor& targets, const AttentionSettings* settings = nullptr,
                  int64_t ce_chunk = 0);
  const at::Tensor& head_weight() const { return lm_head ? lm_head->weight : tok_emb->weight; }
  int64_t parameter_count() const;

  ModelConfig cfg;
  AttentionSettings attention;  // plain RoPE at cfg's θ (an evaluation passes its own settings to
                                // forward; a model trained with another method uses model/trained_rope.h)
  torch::nn::Embedding tok_emb{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::AnyModule norm_f;
  torch::nn::Linear lm_head{nullptr};  // null when tied

 private:
  // The sliding layers' own RoPE (cfg.sliding_rope at their θ and rotated
  // share), read once; --scaling never reaches them.
  RopeParams sliding_params_;
  RopeGeometry sliding_geometry_;
};
TORCH_MODULE(Transformer);

// Builds the model with deterministic GPT-2-style initialisation from `seed`.
Transformer make_model(const ModelConfig& cfg, uint64_t seed);

}  // namespace ropelab::model
