#include "eval/gamma_measure.h"

#include <torch/utils.h>

#include <cmath>

#include "common/error.h"
#include "data/loader.h"

namespace ropelab::eval {
int64_t prompt_length(const GammaProtocol& p, int64_t d) { return p.prompt_length > 0 ? p.prompt_length : d + p.tail; }

at::Tensor gamma_prompts(const GammaProtocol& p, const data::TokenStream* text, int64_t vocab, int64_t d,
                         int64_t seed, int64_t first, int64_t count) {
  const int64_t n = prompt_length(p, d);
  std::vector<int64_t> ids(count * n);
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t key = data::mix64(data::mix64(uint64_t(seed)) ^ uint64_t(d)) ^ uint64_t(first + i);
    if (text) {
      if (text->size() < uint64_t(n)) throw Error("text corpus has fewer tokens than one prompt of " + std::to_string(n));
      text->copy(data::mix64(key) % (text->size() - n + 1), n, ids.data() + i * n);
    } else {
      auto r = data::random_tokens(n, vocab, key);
      std::copy(r.begin(), r.end(), ids.begin() + i * n);
    }
  }
  return torch::from_blob(ids.data(), {count, n}, at::kLong).clone();
}

double uniform_baseline_gamma(const GammaProtocol& p, const std::vector<double>& fitted_distances) {
  std::vector<double> logd, logA;
  for (double d : fitted_distances) {
    logd.push_back(std::log(d));
    logA.push_back(-std::log(double(prompt_length(p, static_cast<int64_t>(d)))));
  }
  return -fit::ols(logd, logA).slope;
}

DecayMeasurement measure_attention_decay(model::Transformer& m, const GammaProtocol& p) {
  if (p.distances.empty()) throw Error("no distances to measure");
  if (p.prompts <= 0 || p.batch <= 0 || p.seeds.empty()) throw Error("--prompts, batch and --seeds must be positive/non-empty");
  const auto& cfg = m->cfg;
  const int64_t context = p.context > 0 ? p.context : cfg.T_train;
  std::unique_ptr<data::TokenStream> text;
  if (p.corpus == "text") text = std::make_unique<data::TokenStream>(p.text_shards);
  else if (p.corpus != "random") throw Error("corpus must be random or text, got " + p.corpus);

  DecayMeasurement out;
  std::vector<int64_t> kept;
  for (int64_t d : p.distances) {
    if (d <= 0) throw Error("distances must be positive, got " + std::to_string(d));
    if (p.prompt_length > 0 && d >= p.prompt_length)
      throw Error("distance " + std::to_string(d) + " does not fit in --prompt-length " + std::to_string(p.prompt_length));
    (d >= context ? out.skipped : kept).push_back(d);
  }
  if (kept.empty()) throw Error("every distance is at or beyond the context of " + std::to_string(context));

  const int64_t L = cfg.n_layers, H = cfg.n_heads, S = p.seeds.size(), D = kept.size();
  const auto dev = m->tok_emb->weight.device();
  // Sums of attention per (seed, distance, layer, head), accumulated in float64.
  auto sums = torch::zeros({S, D, L, H}, at::kDouble);
  torch::NoGradGuard no_grad;
  m->eval();
  for (int64_t di = 0; di < D; ++di) {
    const int64_t d = kept[di], n = prompt_length(p, d);
    model::AttentionProbe probe;
    probe.rows = torch::tensor({n - 1}, at::kLong);
    for (int64_t si = 0; si < S; ++si) {
      for (int64_t first = 0; first < p.prompts; first += p.batch) {
        const int64_t count = std::min(p.batch, p.prompts - first);
        auto idx = gamma_prompts(p, text.get(), cfg.vocab_size, d, p.seeds[si], first, count).to(dev);
        m->forward(idx, nullptr, &probe);
        for (int64_t l = 0; l < L; ++l) {
          // probs[l]: [B, H, 1, n]; the key d tokens before the query sits at n-1-d.
          auto a = probe.probs[l].select(2, 0).select(2, n - 1 - d).to(at::kDouble).sum(0).cpu();
          sums[si][di][l] += a;
        }
      }
    }
  }
  const auto per_prompt = sums / double(p.prompts);  // [S, D, L, H] mean over prompts
  auto curve_sd = per_prompt.mean({2, 3});          // heads, then layers (equal counts: same as nested means)
  auto mean_d = curve_sd.mean(0);
  out.curve.distances.assign(kept.begin(), kept.end());
  for (int64_t di = 0; di < D; ++di) out.curve.A.push_back(mean_d[di].item<double>());
  out.curve.seeds = p.seeds;
  for (int64_t si = 0; si < S; ++si) {
    std::vector<double> row;
    for (int64_t di = 0; di < D; ++di) row.push_back(curve_sd[si][di].item<double>());
    out.curve.per_seed_A.push_back(row);
  }
  auto by_layer_head = per_prompt.mean(0);  // [D, L, H]
  out.per_layer.assign(L, std::vector<double>(D));
  for (int64_t l = 0; l < L; ++l)
    for (int64_t di = 0; di < D; ++di) out.per_layer[l][di] = by_layer_head[di][l].mean().item<double>();
  if (p.per_head) {
    out.per_head.assign(L, std::vector<std::vector<double>>(H, std::vector<double>(D)));
    for (int64_t l = 0; l < L; ++l)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t di = 0; di < D; ++di) out.per_head[l][h][di] = by_layer_head[di][l][h].item<double>();
  }
  return out;
}

}  // namespace ropelab::eval
