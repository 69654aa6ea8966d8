// Measures A(d), the attention a query pays to the key d tokens back, on a
// model, following the public TAF protocol (DESIGN.md): for each distance a
// prompt of d+tail tokens, query = last position, key = d positions earlier;
// A(d) = attention probability there, mean over heads, then layers, then
// prompts; per seed, so the fit can bootstrap over seeds.
#pragma once
#include <string>
#include <vector>

#include "theory/fit.h"
#include "model/transformer.h"

namespace ropelab::data { class TokenStream; }

namespace ropelab::eval {

struct GammaProtocol {
  std::vector<int64_t> distances{10, 20, 30, 50, 100, 200, 500, 1000, 2000};
  int64_t prompts = 150;              // per distance and seed
  std::vector<int64_t> seeds{42, 123, 7};
  int64_t tail = 50;                  // tokens after the key: prompt length = d + tail
  int64_t prompt_length = 0;          // >0: every prompt this long instead (d < prompt_length).
                                      // Under d + tail, even uniform attention decays as
                                      // 1/(d + tail); at a fixed length it measures γ = 0.
  int64_t context = 0;                // distances >= context are skipped; 0 = the model's T_train
  std::string corpus = "random";      // "random" or "text"
  std::vector<std::string> text_shards;  // for corpus == "text"
  int64_t batch = 32;                 // prompts per forward pass
  bool per_head = false;              // also keep A per (layer, head)
};

struct DecayMeasurement {
  fit::DecayCurve curve;                        // mean over heads, layers, prompts; per seed too
  std::vector<int64_t> skipped;                 // distances at or beyond the context
  std::vector<std::vector<double>> per_layer;   // [layer][distance]
  std::vector<std::vector<std::vector<double>>> per_head;  // [layer][head][distance] (per_head only)
};

// The prompts for one (distance, seed): `count` rows starting at prompt index
// `first`, random ids (corpus "random") or windows of `text`; a pure function
// of (seed, d, index) so every batch size sees the same prompts.
at::Tensor gamma_prompts(const GammaProtocol& p, const data::TokenStream* text, int64_t vocab, int64_t d,
                         int64_t seed, int64_t first, int64_t count);
int64_t prompt_length(const GammaProtocol& p, int64_t d);

// γ that uniform attention would show under this protocol: A(d) = 1/n(d)
// with n(d) the prompt length. 0 at a fixed length; under d + tail it is not
// (0.603 for d = 30..200, 0.783 for d = 30..2000 at tail 50), so a measured γ
// near it says the model does not prefer near keys at all.
double uniform_baseline_gamma(const GammaProtocol& p, const std::vector<double>& fitted_distances);

// Throws Error for an empty distance list, non-positive distances or prompts,
// or no distance left inside the context.
DecayMeasurement measure_attention_decay(model::Transformer& m, const GammaProtocol& p);

}  // namespace ropelab::eval
