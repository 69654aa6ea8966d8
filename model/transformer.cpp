#include "model/transformer.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/normalization.h>
#include <torch/utils.h>

#include <cmath>

#include "common/text.h"
#include "model/linear_cross_entropy.h"
#include "model/trained_rope.h"

namespace ropelab::model {
namespace F = torch::nn::functional;

namespace {
torch::nn::AnyModule make_norm(const ModelConfig& c) {
  if (c.norm == "layernorm")
    return torch::nn::AnyModule(torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model}).eps(c.norm_eps)));
  return torch::nn::AnyModule(RMSNorm(c.d_model, c.norm_eps));
}
}  // namespace

MLPImpl::MLPImpl(const ModelConfig& c) {
  up = register_module("up", linear(c.d_model, c.d_ff, c.mlp_bias));
  if (c.mlp != "gelu") gate = register_module("gate", linear(c.d_model, c.d_ff, c.mlp_bias));
  tanh_gelu_gate_ = c.mlp == "geglu";
  down = register_module("down", linear(c.d_ff, c.d_model, c.mlp_bias));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) {
  if (tanh_gelu_gate_) return down->forward(at::gelu(gate->forward(x), "tanh") * up->forward(x));  // Gemma
  if (gate) return down->forward(F::silu(gate->forward(x)) * up->forward(x));
  return down->forward(F::gelu(up->forward(x)));
}

BlockImpl::BlockImpl(const ModelConfig& c, int64_t layer)
    : norm1(make_norm(c)), norm2(make_norm(c)), parallel(c.parallel_residual) {
  register_module("norm1", norm1.ptr());
  attn = register_module("attn", Attention(c, layer));
  register_module("norm2", norm2.ptr());
  mlp = register_module("mlp", MLP(c));
  if (c.sandwich_norms) {
    attn_out_norm = make_norm(c);
    mlp_out_norm = make_norm(c);
    register_module("attn_out_norm", attn_out_norm.ptr());
    register_module("mlp_out_norm", mlp_out_norm.ptr());
  }
}

at::Tensor BlockImpl::forward(const at::Tensor& x, const at::Tensor& pos, const AttentionSettings& s,
                              LayerKV* cache, AttentionProbe* probe) {
  auto a = attn->forward(norm1.forward(x), pos, s, cache, probe);
  if (parallel) return x + a + mlp->forward(norm2.forward(x));  // GPT-NeoX: both branches read x
  if (!attn_out_norm.is_empty()) {  // Gemma 3: each branch's output normalised before it is added
    auto h = x + attn_out_norm.forward(a);
    return h + mlp_out_norm.forward(mlp->forward(norm2.forward(h)));
  }
  auto h = x + a;
  return h + mlp->forward(norm2.forward(h));
}

TransformerImpl::TransformerImpl(const ModelConfig& config) : cfg(config.resolved()) {
  attention.rope_theta = cfg.rope_theta;
  sliding_params_ = cfg.rope_params_of("sliding");
  sliding_geometry_ = cfg.rope_geometry_of("sliding");
  tok_emb = register_module("tok_emb", torch::nn::Embedding(cfg.vocab_size, cfg.d_model));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.n_layers; ++i) blocks->push_back(Block(cfg, i));
  norm_f = make_norm(cfg);
  register_module("norm_f", norm_f.ptr());
  if (!cfg.tie_embeddings) lm_head = register_module("lm_head", linear(cfg.d_model, cfg.vocab_size));
}

at::Tensor TransformerImpl::forward(const at::Tensor& idx, KVCache* cache, AttentionProbe* probe,
                                   const AttentionSettings* settings) {
  auto x = hidden(idx, cache, probe, settings);
  return lm_head ? lm_head->forward(x) : at::matmul(x, tok_emb->weight.t());
}

at::Tensor TransformerImpl::hidden(const at::Tensor& idx, KVCache* cache, AttentionProbe* probe,
                                  const AttentionSettings* settings) {
  const int64_t T = idx.size(1), start = cache ? cache->next_pos : 0;
  auto pos = at::arange(start, start + T, idx.options().dtype(at::kLong));
  if (cache && cache->layers.empty()) cache->layers.resize(cfg.n_layers);
  if (probe) {
    probe->probs.clear();
    probe->queries.clear();
    probe->queries_pre_rope.clear();
  }
  auto x = tok_emb->forward(idx);
  if (cfg.embed_scale) x = x * std::sqrt(double(cfg.d_model));  // Gemma: in the embedding's dtype
  // Without settings: the model's own positions (θ, or the RoPE method it was trained with).
  const AttentionSettings own = cfg.plain_rope() ? attention : trained_attention(cfg, start + T);
  const AttentionSettings& full = settings ? *settings : own;
  // Sliding layers keep their own RoPE whatever --scaling does to the full ones (they never see past their window).
  // (Default RoPE gives plain settings: inv_freq made on the device, as for full layers.)
  const AttentionSettings local = rope_attention(sliding_params_, sliding_geometry_, start + T);
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    auto* block = blocks[l]->as<BlockImpl>();
    const AttentionSettings& s = cfg.layer_type(l) == "sliding" ? local : full;
    x = block->forward(x, pos, s, cache ? &cache->layers[l] : nullptr, probe);
  }
  if (cache) cache->next_pos += T;
  return norm_f.forward(x);
}

at::Tensor TransformerImpl::loss(const at::Tensor& idx, const at::Tensor& targets, const AttentionSettings* settings,
                                 int64_t ce_chunk) {
  if (ce_chunk > 0) {
    auto h = hidden(idx, nullptr, nullptr, settings);
    return linear_cross_entropy(h.reshape({-1, h.size(-1)}), head_weight(), targets.reshape({-1}), ce_chunk);
  }
  auto logits = forward(idx, nullptr, nullptr, settings);
  return F::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(at::kFloat), targets.reshape({-1}));
}

int64_t TransformerImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

Transformer make_model(const ModelConfig& cfg, uint64_t seed) {
  torch::manual_seed(seed);
  Transformer m(cfg);
  torch::NoGradGuard no_grad;
  // GPT-2 initialisation: N(0, 0.02), residual-branch outputs scaled by 1/sqrt(2L).
  const double resid_std = 0.02 / std::sqrt(2.0 * m->cfg.n_layers);
  for (auto& item : m->named_parameters()) {
    const auto& name = item.key();
    auto& p = item.value();
    if (p.dim() < 2) {  // norms keep their ones/zeros; linear biases start at zero
      if (text::ends_with(name, ".bias")) p.zero_();
      continue;
    }
    const bool resid = name.find("attn.wo") != std::string::npos || name.find("mlp.down") != std::string::npos;
    torch::nn::init::normal_(p, 0.0, resid ? resid_std : 0.02);
  }
  return m;
}

}  // namespace ropelab::model
