#include "model/attention.h"

#include <torch/version.h>

#include <cmath>

#include "model/rope.h"

namespace ropelab::model {
namespace {

at::Tensor causal_scores(const at::Tensor& q, const at::Tensor& k, const at::Tensor& q_pos,
                         const at::Tensor& k_pos, double scale, int64_t window) {
  auto scores = at::matmul(q, k.transpose(-2, -1)).to(at::kFloat) * scale;
  auto hidden = k_pos.unsqueeze(0) > q_pos.unsqueeze(1);  // [Tq, Tk]: key after query
  if (window > 0) hidden = hidden.logical_or(k_pos.unsqueeze(0) <= q_pos.unsqueeze(1) - window);
  return scores.masked_fill(hidden, -std::numeric_limits<float>::infinity());
}

// Queries per chunk so one chunk's scores stay near 16 MB: below glibc's
// largest mmap threshold (32 MB), so chunk buffers are reused from the heap
// instead of being mapped and faulted in afresh each time (measured: the γ
// protocol at 2050 tokens spent 3m46s of 4m02s in the kernel with 64 MB chunks).
int64_t query_chunk(const at::Tensor& q, int64_t Tk) {
  const int64_t per_row = q.size(0) * q.size(1) * Tk * 4;
  return std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(per_row, 1));
}

}  // namespace

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& q_pos,
                  const at::Tensor& k_pos, double scale, int64_t window) {
  const int64_t Tq = q.size(2), chunk = query_chunk(q, k.size(2));
  std::vector<at::Tensor> outs;
  for (int64_t s = 0; s < Tq; s += chunk) {
    const int64_t n = std::min(chunk, Tq - s);
    auto p = at::softmax(causal_scores(q.narrow(2, s, n), k, q_pos.narrow(0, s, n), k_pos, scale, window), -1);
    outs.push_back(at::matmul(p.to(v.scalar_type()), v));
  }
  return outs.size() == 1 ? outs[0] : at::cat(outs, 2);
}

at::Tensor attention_probs(const at::Tensor& q_rows, const at::Tensor& k, const at::Tensor& q_pos_rows,
                           const at::Tensor& k_pos, double scale, int64_t window) {
  return at::softmax(causal_scores(q_rows, k, q_pos_rows, k_pos, scale, window), -1);
}

torch::nn::Linear linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  auto xf = x.to(at::kFloat);
  auto y = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return (y * weight.to(at::kFloat)).to(x.scalar_type());
}

namespace {
int64_t window_of(const ModelConfig& c, const std::string& type) {
  if (type == "sliding") return c.sliding_window;
  if (type == "nope") return 0;
  return c.attention_window;
}
}  // namespace

AttentionImpl::AttentionImpl(const ModelConfig& c, int64_t layer)
    : n_heads_(c.n_heads), n_kv_heads_(c.n_kv_heads), d_head_(c.d_head), rotary_dim_(c.rotary_dim_of(c.layer_type(layer))),
      window_(window_of(c, c.layer_type(layer))),
      scale_(1.0 / std::sqrt(c.query_pre_attn_scalar > 0 ? c.query_pre_attn_scalar : double(c.d_head))),
      rotates_(c.layer_type(layer) != "nope"),
      nope_attn_scale_(c.nope_attn_scale), nope_floor_scale_(c.nope_floor_scale) {
  wq = register_module("wq", linear(c.d_model, c.n_heads * c.d_head, c.qkv_bias));
  wk = register_module("wk", linear(c.d_model, c.n_kv_heads * c.d_head, c.qkv_bias));
  wv = register_module("wv", linear(c.d_model, c.n_kv_heads * c.d_head, c.qkv_bias));
  wo = register_module("wo", linear(c.n_heads * c.d_head, c.d_model, c.out_bias));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(c.d_head, c.norm_eps));
    k_norm = register_module("k_norm", RMSNorm(c.d_head, c.norm_eps));
  }
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& pos, const AttentionSettings& s,
                                  LayerKV* cache, AttentionProbe* probe) {
  const int64_t B = x.size(0), T = x.size(1);
  auto heads = [&](const at::Tensor& t, int64_t h) { return t.view({B, T, h, d_head_}).transpose(1, 2); };
  auto q = heads(wq->forward(x), n_heads_);
  auto k = heads(wk->forward(x), n_kv_heads_);
  auto v = heads(wv->forward(x), n_kv_heads_);
  if (q_norm) {  // Qwen3: each head's q and k normalised before the rotation
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }

  const at::Tensor q_pre_rope = probe && probe->keep_queries ? q : at::Tensor();
  if (rotates_) {
    const auto inv_freq = s.inv_freq.defined() ? s.inv_freq : rope_inv_freq(s.rope_theta, rotary_dim_, x.device());
    const auto tables = rope_tables(inv_freq, pos, s.rope_attention_factor, q.scalar_type());
    q = apply_rope(q, tables);
    k = apply_rope(k, tables);
  } else if (nope_attn_scale_ > 0) {
    // Llama 4's NoPE layers: queries at n scaled by 1 + s·log(⌊(n+1)/floor⌋ + 1).
    auto n = pos.to(at::kDouble) + 1.0;
    auto f = at::log(at::floor(n / double(nope_floor_scale_)) + 1.0) * nope_attn_scale_ + 1.0;
    q = q * f.to(q.scalar_type()).view({1, 1, T, 1});
  }
  if (s.logn_train_length > 0 && rotates_) {
    // log-n scaling: a query at position n > T_train sharpens by log(n)/log(T_train).
    auto n = pos.to(at::kDouble) + 1.0;
    auto f = at::clamp_min(at::log(n) / std::log(double(s.logn_train_length)), 1.0);
    q = q * f.to(q.scalar_type()).view({1, 1, T, 1});
  }

  at::Tensor k_pos = pos;
  if (cache) {
    if (cache->k.defined()) {
      k = at::cat({cache->k, k}, 2);
      v = at::cat({cache->v, v}, 2);
      k_pos = at::cat({cache->pos, pos}, 0);
    }
    cache->k = k; cache->v = v; cache->pos = k_pos;
    if (window_ > 0 && k_pos.size(0) >= window_) {
      // A windowed layer keeps only the keys a later query can see: those
      // after (the next position) − window.
      const int64_t next = pos[-1].item<int64_t>() + 1;
      const auto keep = (k_pos > next - window_).nonzero().squeeze(1);
      cache->k = k.index_select(2, keep);
      cache->v = v.index_select(2, keep);
      cache->pos = k_pos.index_select(0, keep);
    }
  }
  // Grouped-query attention: KV head g serves query heads g*G .. g*G+G-1.
  const int64_t groups = n_heads_ / n_kv_heads_;
  if (groups > 1) {
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  const double scale = scale_;

  // When every query row is probed in order (a decode step, or a probed
  // prefill), the probabilities are the attention itself: reuse them for the
  // output instead of computing the scores twice.
  at::Tensor all_rows_probs;
  if (probe) {
    auto rows = probe->rows.to(q.device());
    auto q_rows = q.index_select(2, rows);
    probe->probs.push_back(attention_probs(q_rows, k, pos.index_select(0, rows), k_pos, scale, window_));
    const auto r = probe->rows.cpu();
    if (r.numel() == T && at::equal(r, at::arange(T, r.options()))) all_rows_probs = probe->probs.back();
    if (probe->keep_queries) {
      probe->queries.push_back(q_rows);
      probe->queries_pre_rope.push_back(q_pre_rope.index_select(2, rows));
    }
  }

  at::Tensor y;
  if (all_rows_probs.defined()) {
    y = at::matmul(all_rows_probs.to(v.scalar_type()), v);
    return wo->forward(y.transpose(1, 2).reshape({B, T, n_heads_ * d_head_}));
  }
#if TORCH_VERSION_MAJOR >= 2
  // Fused kernels when the mask is plain causal: flash/memory-efficient on
  // CUDA, the fused CPU kernel otherwise (the explicit path below holds the
  // whole [Tq, Tk] score matrix and a mask; measured in docs/performance.md).
  // (YaRN's attention factor is in the rotated q and k: SDPA's default 1/sqrt(D) applies.)
  const bool window_hides = window_ > 0 && k.size(2) > window_;
  if ((k.size(2) == T || T == 1) && !window_hides) {
    // SDPA scales by 1/sqrt(d_head); another scale (Gemma's) is folded into q.
    const double fold = scale_ * std::sqrt(double(d_head_));
    y = at::scaled_dot_product_attention(fold == 1.0 ? q : q * fold, k, v, {}, 0.0, /*is_causal=*/T > 1);
  } else
#endif
  {
    y = attend(q, k, v, pos, k_pos, scale, window_);
  }
  return wo->forward(y.transpose(1, 2).reshape({B, T, n_heads_ * d_head_}));
}

}  // namespace ropelab::model
