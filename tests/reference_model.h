// An independent float64 forward of a ropelab Transformer, written from the
// textbook definitions (scalar RoPE, explicit causal softmax per head), that
// the tests compare the real implementation against.
#pragma once
#include <functional>
#include <torch/torch.h>

#include <cmath>

#include "model/transformer.h"

namespace ropelab::test {
using model::Transformer;

struct ReferenceOutput {
  at::Tensor logits;                   // [T, vocab]
  std::vector<at::Tensor> attention;   // per layer [H, T, T]
};

inline at::Tensor param(Transformer& m, const std::string& name) {
  return m->named_parameters()[name].detach().to(at::kDouble);
}

inline at::Tensor norm_ref(const at::Tensor& x, Transformer& m, const std::string& prefix) {
  if (m->cfg.norm == "rmsnorm")
    return x / torch::sqrt((x * x).mean(-1, true) + 1e-5) * param(m, prefix + ".weight");
  auto mu = x.mean(-1, true);
  auto var = ((x - mu) * (x - mu)).mean(-1, true);
  return (x - mu) / torch::sqrt(var + 1e-5) * param(m, prefix + ".weight") + param(m, prefix + ".bias");
}

// Rotates pair (i, i+rd/2) of every head vector by pos·θ^(-2i/rd)/divisor (linear
// scaling's divisor; 1: plain RoPE), one scalar at a time.
inline at::Tensor rope_ref(at::Tensor x /*[T,H,D]*/, double theta, int64_t rd, double divisor = 1.0) {
  x = x.clone();
  auto a = x.accessor<double, 3>();
  for (int64_t t = 0; t < x.size(0); ++t)
    for (int64_t h = 0; h < x.size(1); ++h)
      for (int64_t i = 0; i < rd / 2; ++i) {
        const double ang = t * std::pow(theta, -2.0 * i / rd) / divisor, c = std::cos(ang), s = std::sin(ang);
        const double x1 = a[t][h][i], x2 = a[t][h][i + rd / 2];
        a[t][h][i] = x1 * c - x2 * s;
        a[t][h][i + rd / 2] = x2 * c + x1 * s;
      }
  return x;
}

// `visible(i, j)`, when given, narrows the causal mask: query i sees key j <= i
// only where it returns true (e.g. a sliding window).
inline ReferenceOutput reference_forward(Transformer& m, const at::Tensor& ids /*[T]*/,
                                         const std::function<bool(int64_t, int64_t)>& visible = nullptr) {
  ReferenceOutput r;
  const auto& c = m->cfg;
  const int64_t T = ids.size(0), H = c.n_heads, KV = c.n_kv_heads, D = c.d_head;
  auto emb = param(m, "tok_emb.weight");
  auto x = emb.index_select(0, ids);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    auto h = norm_ref(x, m, p + "norm1");
    auto q = h.matmul(param(m, p + "attn.wq.weight").t()).view({T, H, D});
    auto k = h.matmul(param(m, p + "attn.wk.weight").t()).view({T, KV, D});
    if (c.qk_norm) {  // Qwen3: RMSNorm over each head vector
      q = q / torch::sqrt((q * q).mean(-1, true) + c.norm_eps) * param(m, p + "attn.q_norm.weight");
      k = k / torch::sqrt((k * k).mean(-1, true) + c.norm_eps) * param(m, p + "attn.k_norm.weight");
    }
    // The layer's type: full (θ, attention_window), sliding (its θ, window, rotated share and
    // linear factor: the one sliding method written here), nope (no rotation).
    const std::string type = c.layer_type(l);
    const double theta = type == "sliding" && c.sliding_rope_theta > 0 ? c.sliding_rope_theta : c.rope_theta;
    const int64_t window = type == "sliding" ? c.sliding_window : type == "full" ? c.attention_window : 0;
    int64_t rd = c.rotary_dim();
    double divisor = 1.0;
    if (type == "sliding" && c.sliding_rotary_fraction > 0) rd = int64_t(c.sliding_rotary_fraction * D / 2) * 2;
    if (type == "sliding" && !c.sliding_rope.empty()) {
      if (c.sliding_rope.rfind("linear:", 0) != 0) throw std::runtime_error("reference: sliding_rope linear:F only");
      divisor = std::stod(c.sliding_rope.substr(7));
    }
    if (type != "nope") {
      q = rope_ref(q, theta, rd, divisor);
      k = rope_ref(k, theta, rd, divisor);
    } else if (c.nope_attn_scale > 0) {  // Llama 4's query temperature
      for (int64_t t = 0; t < T; ++t)
        q[t] *= 1.0 + c.nope_attn_scale * std::log(std::floor(double(t + 1) / double(c.nope_floor_scale)) + 1.0);
    }
    auto v = h.matmul(param(m, p + "attn.wv.weight").t()).view({T, KV, D});
    auto out = torch::zeros({T, H, D}, at::kDouble);
    auto probs = torch::zeros({H, T, T}, at::kDouble);
    for (int64_t hd = 0; hd < H; ++hd) {
      const int64_t g = hd / (H / KV);
      auto s = q.select(1, hd).matmul(k.select(1, g).t()) / std::sqrt(double(D));
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
          if (j > i || (visible && !visible(i, j)) || (window > 0 && i - j >= window)) s[i][j] = -INFINITY;
      probs[hd].copy_(torch::softmax(s, -1));
      out.select(1, hd).copy_(probs[hd].matmul(v.select(1, g)));
    }
    r.attention.push_back(probs);
    x = x + out.reshape({T, H * D}).matmul(param(m, p + "attn.wo.weight").t());
    auto h2 = norm_ref(x, m, p + "norm2");
    auto up = h2.matmul(param(m, p + "mlp.up.weight").t());
    auto act = c.mlp == "swiglu" ? torch::silu(h2.matmul(param(m, p + "mlp.gate.weight").t())) * up
                                 : 0.5 * up * (1.0 + torch::erf(up / std::sqrt(2.0)));
    x = x + act.matmul(param(m, p + "mlp.down.weight").t());
  }
  x = norm_ref(x, m, "norm_f");
  r.logits = x.matmul((c.tie_embeddings ? emb : param(m, "lm_head.weight")).t());
  return r;
}

}  // namespace ropelab::test
