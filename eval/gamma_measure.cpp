#include "eval/gamma_measure.h"

#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/config_fields.h"
#include "common/error.h"
#include "data/loader.h"

namespace ropelab::eval {

const std::vector<config::Field<GammaProtocol>>& protocol_fields() {
  using C = GammaProtocol;
  static const std::vector<config::Field<C>> fields = {
      {"protocol", nullptr, &C::name, "", "taf or fixed"},
      {"distances", "distances", &C::distances, "protocol",
       "key distances d (default: --grid-points log-spaced from --fit-min-d to the largest whose prompt fits the context)",
       {[](const C& c) { return std::all_of(c.distances.begin(), c.distances.end(), [](int64_t d) { return d > 0; }); },
        "must all be > 0"}},
      {"grid_points", "grid-points", &C::grid_points, "protocol", "size of the default distance grid",
       {[](const C& c) { return c.grid_points >= 5; }, "must be >= 5 (a γ needs 5 fitted points)"}},
      {"prompts", "prompts", &C::prompts, "protocol", "prompts per distance and seed",
       {[](const C& c) { return c.prompts > 0; }, "must be > 0"}},
      {"seeds", "seeds", &C::seeds, "protocol", "prompt seeds",
       {[](const C& c) { return !c.seeds.empty(); }, "must list at least one prompt seed"}},
      {"tail", "tail", &C::tail, "protocol", "taf: tokens after the key (prompt length d + tail)",
       {[](const C& c) { return c.tail >= 1; }, "must be >= 1"}},
      {"prompt_length", "prompt-length", &C::prompt_length, "protocol", "fixed: the prompt length (0 = the context)",
       {[](const C& c) { return c.prompt_length >= 0; }, "must be > 0 (or 0: the context)"}},
      {"context", "context", &C::context, "protocol",
       "the longest prompt (0 = the model's T_train); longer prompts are skipped",
       {[](const C& c) { return c.context >= 0; }, "must be > 0 (or 0: T_train)"}},
      {"corpus", nullptr, &C::corpus, "", "random or text"},
      {"text_shards", nullptr, &C::text_shards, "", "the text corpus's shards"},
      {"batch", "batch", &C::batch, "protocol", "prompts per forward pass",
       {[](const C& c) { return c.batch > 0; }, "must be > 0"}},
      {"per_head", "per-head", &C::per_head, "protocol", "γ per (layer, head): the γ-field", {}, false, true},
  };
  return fields;
}

void check_protocol(const GammaProtocol& p) {
  if (p.name != "taf" && p.name != "fixed") throw Error("--protocol must be taf or fixed, got \"" + p.name + "\"");
  config::check_flags(p, protocol_fields());
  if (p.name == "taf" && p.prompt_length > 0)
    throw Error("--prompt-length " + std::to_string(p.prompt_length) +
                " contradicts --protocol taf (prompts of d + tail tokens); use --protocol fixed");
}

int64_t prompt_length(const GammaProtocol& p, int64_t context, int64_t d) {
  if (p.name == "fixed") return p.prompt_length > 0 ? p.prompt_length : context;
  return d + p.tail;
}

std::vector<int64_t> default_distances(const GammaProtocol& p, int64_t context, double fit_min_d) {
  const int64_t lo = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(fit_min_d)));
  // The farthest key keeps tail − 1 tokens before it under both protocols (at
  // position tail − 1, where taf puts every key): the first tokens of a prompt
  // draw attention for being first (sinks), and a grid reaching them would
  // measure position, not distance (docs/gamma-protocol.md).
  const int64_t hi = (p.name == "fixed" ? std::min(prompt_length(p, context, 0), context) : context) - p.tail;
  if (hi < lo)
    throw Error("no distance >= " + std::to_string(lo) + " (--fit-min-d) has a prompt inside the context of " +
                std::to_string(context) + " tokens under --protocol " + p.name +
                (p.name == "taf" ? " (prompts of d + " + std::to_string(p.tail) + ")" : "") +
                (p.name == "fixed" ? " (the farthest key keeps " + std::to_string(p.tail - 1) + " tokens before it)" : "") +
                "; lower --fit-min-d" + (p.name == "taf" ? " or --tail" : "") + ", give --distances" +
                ", or raise --context on purpose");
  std::set<int64_t> grid;
  const int64_t n = p.grid_points;
  for (int64_t i = 0; i < n; ++i) {
    const double t = n == 1 ? 0.0 : double(i) / double(n - 1);
    grid.insert(std::llround(std::exp(std::log(double(lo)) + t * (std::log(double(hi)) - std::log(double(lo))))));
  }
  return {grid.begin(), grid.end()};
}

at::Tensor gamma_prompts(const data::TokenStream* text, int64_t vocab, int64_t n, int64_t d,
                         int64_t seed, int64_t first, int64_t count) {
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

double uniform_baseline_gamma(const GammaProtocol& p, int64_t context, const std::vector<double>& fitted_distances) {
  fit::DecayCurve c;
  c.distances = fitted_distances;
  for (double d : fitted_distances) c.prompt_lengths.push_back(double(prompt_length(p, context, static_cast<int64_t>(d))));
  return fit::uniform_baseline_gamma(c, 0);
}

AttentionSource model_source(model::Transformer& m) {
  AttentionSource s;
  s.n_layers = m->cfg.n_layers;
  s.n_heads = m->cfg.n_heads;
  s.vocab = m->cfg.vocab_size;
  s.T_train = m->cfg.T_train;
  s.device = m->tok_emb->weight.device();
  s.last_row = [m](const at::Tensor& ids) mutable {
    model::AttentionProbe probe;
    probe.rows = torch::tensor({ids.size(1) - 1}, at::kLong);
    m->forward(ids, nullptr, &probe);
    std::vector<at::Tensor> rows;
    for (auto& p : probe.probs) rows.push_back(p.select(2, 0));  // [B, H, 1, n] -> [B, H, n]
    return rows;
  };
  return s;
}

namespace {

// The distances to measure and those skipped (with why), for a resolved context.
std::vector<int64_t> plan_distances(const GammaProtocol& p, int64_t context, double fit_min_d,
                                    std::vector<SkippedDistance>& skipped) {
  const auto wanted = p.distances.empty() ? default_distances(p, context, fit_min_d) : p.distances;
  std::vector<int64_t> kept;
  for (int64_t d : wanted) {
    const int64_t n = prompt_length(p, context, d);
    if (n > context)
      skipped.push_back({d, n, "a prompt of " + std::to_string(n) + " tokens is longer than the context of " +
                                   std::to_string(context)});
    else if (d >= n)
      skipped.push_back({d, n, "the key would lie before the start of the fixed prompt of " + std::to_string(n) +
                                   " tokens"});
    else
      kept.push_back(d);
  }
  if (kept.empty())
    throw Error("no distance has a prompt inside the context of " + std::to_string(context) + " tokens (--protocol " +
                p.name + "); measure shorter distances, or raise --context on purpose");
  return kept;
}

}  // namespace

DecayMeasurement measure_attention_decay(const AttentionSource& src, const GammaProtocol& p, double fit_min_d) {
  check_protocol(p);
  DecayMeasurement out;
  out.context = p.context > 0 ? p.context : src.T_train;
  const auto kept = plan_distances(p, out.context, fit_min_d, out.skipped);
  std::unique_ptr<data::TokenStream> text;
  if (p.corpus == "text") text = std::make_unique<data::TokenStream>(p.text_shards);
  else if (p.corpus != "random") throw Error("corpus must be random or text, got " + p.corpus);

  const int64_t L = src.n_layers, H = src.n_heads, S = p.seeds.size(), D = kept.size();
  // Sums of attention per (seed, distance, layer, head), accumulated in float64.
  auto sums = torch::zeros({S, D, L, H}, at::kDouble);
  torch::NoGradGuard no_grad;
  for (int64_t di = 0; di < D; ++di) {
    const int64_t d = kept[di], n = prompt_length(p, out.context, d);
    for (int64_t si = 0; si < S; ++si) {
      for (int64_t first = 0; first < p.prompts; first += p.batch) {
        const int64_t count = std::min(p.batch, p.prompts - first);
        auto idx = gamma_prompts(text.get(), src.vocab, n, d, p.seeds[si], first, count).to(src.device);
        const auto rows = src.last_row(idx);
        for (int64_t l = 0; l < L; ++l)  // rows[l]: [B, H, n]; the key d tokens before the query sits at n-1-d
          sums[si][di][l] += rows[l].select(2, n - 1 - d).to(at::kDouble).sum(0).cpu();
      }
    }
  }
  const auto per_prompt = sums / double(p.prompts);  // [S, D, L, H] mean over prompts
  auto curve_sd = per_prompt.mean({2, 3});          // heads, then layers (equal counts: same as nested means)
  auto mean_d = curve_sd.mean(0);
  out.curve.distances.assign(kept.begin(), kept.end());
  for (int64_t d : kept) out.curve.prompt_lengths.push_back(double(prompt_length(p, out.context, d)));
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

DecayMeasurement measure_attention_decay(model::Transformer& m, const GammaProtocol& p, double fit_min_d) {
  m->eval();
  return measure_attention_decay(model_source(m), p, fit_min_d);
}

}  // namespace ropelab::eval
