// Needle-in-a-haystack retrieval and perplexity beyond the training length,
// for each context-extension method (`ropelab eval niah`).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/evaluation.h"
#include "model/rope_scaling.h"
#include "model/transformer.h"

namespace ropelab::config { template <class C> struct Field; }

namespace ropelab::eval {

struct NiahOptions {
  std::vector<std::string> lengths{"0.5x", "1x", "2x", "4x", "8x"};  // tokens, or multiples of T_train
  std::vector<double> depths{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
  int64_t trials = 50;
  std::string scaling = "none,ntk:alpha_opt";
  int n_keys = 1;              // > 1: the multi-key variant
  double gamma_target = 0.85;  // for α_opt
  std::string gamma_from;      // γ results .jsonl (`eval gamma`) holding this checkpoint's record: alpha_opt_measured
  std::string gamma_protocol = "taf";  // which of its records: the γ protocol ("taf", "fixed"; "" = any)
  uint64_t seed = 1234;
  int64_t ppl_windows = 8;     // held-out windows per (method, length); 0 = skip perplexity
  bool no_generation = false;  // skip greedy exact-match scoring
  std::string out;
  OpenOptions open;            // a Hugging Face directory's model id, dtype, data
};

// Everything about the options that can be wrong, checked before any work:
// lengths (format, and memory), depths in [0,1], methods, trials.
// A sweep of ntk, ntk-aware or yarn brings its closed forms along, scored on
// the same prompts: KIND:alpha_opt, and KIND:alpha_opt_measured with --gamma-from.
struct NiahPlan {
  std::vector<int64_t> lengths;
  std::vector<model::ScalingMethod> methods;
};
// Each option once (common/config_fields.h): the flags of `eval niah` (and so
// the [niah] recipe keys), the records' ropelab.options, and the rules that
// need no model (plan_niah checks them, then the lengths against the model).
const std::vector<config::Field<NiahOptions>>& niah_fields();

NiahPlan plan_niah(const NiahOptions& opt, const model::ModelConfig& cfg);

// Whether the true key outranks every wrong key by log-probability as the
// continuation of a prefilled cache whose last logits are `last` (score (a)
// of the NIAH protocol; `eval kv` uses it on compressed caches too).
// `settings`: the attention settings the context was read with (nullptr: the model's own).
bool key_ranks_first(model::Transformer& m, const model::KVCache& ctx, const at::Tensor& last,
                     const std::vector<int64_t>& answer, const std::vector<std::vector<int64_t>>& wrong,
                     const model::AttentionSettings* settings = nullptr);

// Wilson score interval for k successes in n trials (95%).
std::pair<double, double> wilson95(int64_t k, int64_t n);

// Runs the evaluation on one checkpoint; returns the records (also appended
// to opt.out): kind "niah" (one per method, length, depth), kind "niah_pooled"
// (one per method, length: the depths pooled, with the factor applied), kind
// "perplexity" (one per method, length), and kind "alpha_star" (one per
// family and length with two or more fixed factors: eval/alpha_star.h).
// Every method sees the same prompts (they depend on seed, length, depth and
// trial only), so the accuracies along a sweep are paired.
std::vector<nlohmann::json> eval_niah(const std::string& ckpt_path, const NiahOptions& opt);

// Terminal view: accuracy per method and length (mean over depths), with
// chance, then the α* table when there are "alpha_star" records.
std::string niah_table(const std::vector<nlohmann::json>& records);

}  // namespace ropelab::eval
