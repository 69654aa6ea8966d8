// Measures A(d), the attention a query pays to the key d tokens back, on a
// model, under one of two named protocols (docs/gamma-protocol.md):
//   taf    the public TAF protocol: a prompt of d + tail tokens per distance;
//          the softmax normalises over a prompt that grows with d, so even
//          uniform attention "decays" (uniform_baseline_gamma), and the fit
//          recovers the model's own exponent only through the normalised
//          estimate (fit::GammaFit::gamma_intrinsic);
//   fixed  one prompt length for every distance (default: the context), where
//          uniform attention reads γ = 0.
// The query is the last position, the key d positions earlier; A(d) is the
// attention probability there, mean over heads, then layers, then prompts,
// per prompt seed, so the fit can bootstrap over seeds. No prompt is longer
// than the context (default: the model's T_train) unless the context is
// raised on purpose; a distance whose prompt would be is skipped, with why.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "theory/fit.h"
#include "model/transformer.h"

namespace ropelab::data { class TokenStream; }
namespace ropelab::config { template <class C> struct Field; }

namespace ropelab::eval {

struct GammaProtocol {
  std::string name = "taf";           // "taf" or "fixed"
  std::vector<int64_t> distances;     // empty: default_distances()
  int64_t prompts = 150;              // per distance and seed
  std::vector<int64_t> seeds{42, 123, 7};
  int64_t tail = 50;                  // taf: tokens after the key (prompt length d + tail)
  int64_t prompt_length = 0;          // fixed: every prompt this long; 0 = the context
  int64_t context = 0;                // the longest prompt; 0 = the model's T_train
  int64_t grid_points = 10;           // size of the default grid
  std::string corpus = "random";      // "random" or "text"
  std::vector<std::string> text_shards;  // for corpus == "text"
  int64_t batch = 32;                 // prompts per forward pass
  bool per_head = false;              // also keep A per (layer, head)
};

// Each field once (common/config_fields.h): flags of `eval gamma` (and so the
// [gamma] recipe keys), the record's ropelab.options, and the rules. name,
// corpus and text_shards are recorded but not flags: --protocol taf,fixed
// makes one record per protocol, and --corpus is parsed into the other two.
const std::vector<config::Field<GammaProtocol>>& protocol_fields();

// Checks the protocol's fields (their rules, then the name and the
// combinations); throws Error naming the flag.
void check_protocol(const GammaProtocol& p);

// The prompt length at distance d under p, for a model of context `context`
// (the resolved one: p.context, else T_train).
int64_t prompt_length(const GammaProtocol& p, int64_t context, int64_t d);

// The default distances: grid_points log-spaced integers from fit_min_d up
// to context − tail under taf (the longest prompt that fits), prompt length −
// tail under fixed (the farthest key keeps tail − 1 tokens before it, as every
// taf key does, away from the first tokens' sink attention), so every one is
// fitted and both protocols fit one grid at prompt length = context.
// Throws Error when that range is empty, saying what would make room.
std::vector<int64_t> default_distances(const GammaProtocol& p, int64_t context, double fit_min_d);

struct SkippedDistance {
  int64_t distance = 0, prompt_length = 0;
  std::string reason;
};

struct DecayMeasurement {
  fit::DecayCurve curve;                        // mean over heads, layers, prompts; per seed; prompt lengths
  std::vector<SkippedDistance> skipped;         // distances not measured, and why
  int64_t context = 0;                          // the resolved context
  std::vector<std::vector<double>> per_layer;   // [layer][distance]
  std::vector<std::vector<std::vector<double>>> per_head;  // [layer][head][distance] (per_head only)
};

// The prompts for one (distance, seed): `count` rows of length n starting at
// prompt index `first`, random ids (corpus "random") or windows of `text`; a
// pure function of (seed, d, index) so every batch size sees the same prompts.
at::Tensor gamma_prompts(const data::TokenStream* text, int64_t vocab, int64_t n, int64_t d,
                         int64_t seed, int64_t first, int64_t count);

// γ that uniform attention shows under this protocol: the OLS slope of
// log(1/n(d)) on log d over the fitted distances. 0 under fixed; under taf
// 0.603 for d = 30..200 and 0.783 for d = 30..2000 at tail 50.
double uniform_baseline_gamma(const GammaProtocol& p, int64_t context, const std::vector<double>& fitted_distances);

// What the measurement reads attention from: for a batch of prompts [B, n],
// the last position's attention probabilities over the n keys, per layer,
// each [B, n_heads, n]. A model is one source; a test plants another.
struct AttentionSource {
  int64_t n_layers = 0, n_heads = 0, vocab = 0, T_train = 0;
  at::Device device = at::kCPU;
  std::function<std::vector<at::Tensor>(const at::Tensor& ids)> last_row;
};
AttentionSource model_source(model::Transformer& m);

// Throws Error for a bad protocol, non-positive distances or prompts, or no
// distance whose prompt fits the context.
DecayMeasurement measure_attention_decay(const AttentionSource& src, const GammaProtocol& p, double fit_min_d = 30);
DecayMeasurement measure_attention_decay(model::Transformer& m, const GammaProtocol& p, double fit_min_d = 30);

}  // namespace ropelab::eval
