// The one attention implementation. Everything that varies between RoPE
// studies (base, interpolation, per-frequency scaling, temperature, log-n
// query scaling, a KV cache, reading attention rows) is a parameter here.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "model/config.h"

namespace ropelab::model {

// A Linear layer; ropelab's own models have no biases, released ones may.
torch::nn::Linear linear(int64_t in, int64_t out, bool bias = false);

// How positions become rotations (model/trained_rope.h makes them from a RoPE method).
struct AttentionSettings {
  double rope_theta = 10000.0;       // base θ, when inv_freq is undefined
  at::Tensor inv_freq;               // undefined: θ^(-2i/rd); else one per rotated pair, float64
  double rope_attention_factor = 1.0;  // cos and sin multiplied by it (YaRN, LongRoPE)
  int64_t logn_train_length = 0;     // >0: queries at n > this scaled by log(n)/log(train length)
};

// Keys/values seen so far in one layer; keys are stored rotated.
struct LayerKV {
  at::Tensor k, v;    // [B, n_kv_heads, T_cached, d_head]
  at::Tensor pos;     // int64 [T_cached]: the position of each cached key
};
struct KVCache {
  std::vector<LayerKV> layers;
  int64_t next_pos = 0;  // position of the next token fed
};

// Asks a forward pass for the attention probabilities of chosen query rows.
struct AttentionProbe {
  at::Tensor rows;                 // int64 indices into this forward's query positions
  std::vector<at::Tensor> probs;   // filled per layer: [B, n_heads, n_rows, T_keys], float32
  bool keep_queries = false;       // also record the rows' queries, rotated and before RoPE
  std::vector<at::Tensor> queries; // per layer: [B, n_heads, n_rows, d_head], rotated
  std::vector<at::Tensor> queries_pre_rope;  // per layer, as projected (what Expected Attention models)
};

// softmax(q k^T * scale + causal mask) v, computed in query chunks so no
// [T, T] matrix per head is held at once. q: [B,H,Tq,D]; k,v: [B,H,Tk,D]
// (already expanded to H heads); q_pos [Tq], k_pos [Tk] int64. window > 0:
// a query at n sees only keys at positions > n - window (Mistral's sliding window).
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& q_pos,
                  const at::Tensor& k_pos, double scale, int64_t window = 0);
// Attention probabilities of the given q rows (same math as attend).
at::Tensor attention_probs(const at::Tensor& q_rows, const at::Tensor& k, const at::Tensor& q_pos_rows,
                           const at::Tensor& k_pos, double scale, int64_t window = 0);

// RMSNorm over the last dimension (the model's norms, and Qwen3's per-head q/k norm).
class RMSNormImpl : public torch::nn::Module {
 public:
  explicit RMSNormImpl(int64_t dim, double eps = 1e-5);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// Attention of layer `layer`: its type (cfg.layer_type) decides whether it
// rotates (full, sliding) and which keys it sees (sliding: the last
// sliding_window; full: attention_window, 0 = all; nope: all).
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& cfg, int64_t layer);
  // x: [B, T, d_model]; pos: int64 [T] absolute positions of x's tokens.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& pos, const AttentionSettings& s,
                     LayerKV* cache, AttentionProbe* probe);

  torch::nn::Linear wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // qk_norm only

 private:
  int64_t n_heads_, n_kv_heads_, d_head_, rotary_dim_, window_;
  double scale_;  // of the scores: d_head^(-1/2), or query_pre_attn_scalar^(-1/2) (Gemma 3)
  bool rotates_;
  double nope_attn_scale_;
  int64_t nope_floor_scale_;
};
TORCH_MODULE(Attention);

}  // namespace ropelab::model
