#include "eval/kv_eval.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <utility>
#include <sstream>

#include "common/config_fields.h"
#include "common/error.h"
#include "common/io.h"
#include "common/progress.h"
#include "common/text.h"
#include "data/loader.h"
#include "data/passkey.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "theory/closed_forms.h"
#include "eval/niah.h"
#include "eval/evaluation.h"
#include "eval/query_gmm.h"
#include "model/kv_policy.h"
#include "train/checkpoint.h"

namespace ropelab::eval {
namespace {

// [B, H, ...] -> [B, G, ...]: the mean over each KV head's query heads.
at::Tensor group_mean(const at::Tensor& t, int64_t G) {
  auto sizes = t.sizes().vec();
  const int64_t H = sizes[1];
  sizes[1] = H / G;
  sizes.insert(sizes.begin() + 1, G);
  return t.reshape(sizes).mean(2);
}

// What compression reads from a prefill, per layer: the observation window's
// attention rows, the attention accumulated by every query, the queries.
struct Prefill {
  model::KVCache cache;
  // Per layer: whether it keeps its own window (a sliding layer). Its cache is
  // bounded by the design; the policies compress the other layers, and the
  // masses and kept counts are over those.
  std::vector<bool> own_window;
  std::vector<at::Tensor> recent, accum;              // [1, H, obs, N], [1, H, N]
  std::vector<at::Tensor> queries, queries_pre_rope;  // [1, H, N, D] each
};

Prefill prefill(model::Transformer& m, const std::vector<int64_t>& tokens, int64_t obs) {
  const int64_t N = tokens.size();
  Prefill p;
  model::AttentionProbe probe;
  probe.rows = torch::arange(N, at::kLong);
  probe.keep_queries = true;
  m->forward(torch::tensor(tokens, at::kLong).unsqueeze(0), &p.cache, &probe);
  // A layer whose cache already dropped keys keeps its own window (sliding layers, or a Mistral window < N).
  for (const auto& layer : p.cache.layers) p.own_window.push_back(layer.k.size(2) < N);
  if (std::none_of(p.own_window.begin(), p.own_window.end(), [](bool own) { return !own; }))
    throw Error("eval kv: every layer keeps its own window, shorter than the context " + std::to_string(N) +
                " (sliding_window / attention_window): there is no cache left to compress");
  for (const auto& a : probe.probs) {
    p.recent.push_back(a.narrow(2, N - obs, obs).clone());
    p.accum.push_back(a.sum(2));
  }
  p.queries = probe.queries;
  p.queries_pre_rope = probe.queries_pre_rope;
  return p;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Per-step eviction state: the policy, each layer's budget, and the attention
// each cached token has accumulated (H2O's score), aligned with the cache.
struct StepEviction {
  model::KVPolicySpec spec;
  std::vector<int64_t> budgets;
  std::vector<at::Tensor> accum;  // [1, G, T] per layer (undefined for a layer with its own window)
  int64_t G = 1;
  bool in_place = true;           // KVEvalOptions::evict_in_place
};

// The eviction state right after compress(): each layer's budget (which the
// cache may still be below, when the prefill was shorter), scores gathered.
StepEviction start_eviction(const model::KVPolicySpec& spec, int64_t mean_budget, const Prefill& pre,
                            const std::vector<at::Tensor>& kept, int64_t G) {
  StepEviction ev{spec, {}, {}, G};
  const int64_t L = kept.size();
  for (int64_t l = 0; l < L; ++l) {
    ev.budgets.push_back(model::layer_budget(spec, mean_budget, l, L));
    ev.accum.push_back(kept[l].defined() ? group_mean(pre.accum[l], G).gather(2, kept[l]) : at::Tensor());
  }
  return ev;
}

// After a decoded token: fold its attention into the scores, then bring each
// layer back to its budget by the policy, fed the newest query's attention.
void evict_step(model::KVCache& cache, const std::vector<at::Tensor>& probs, StepEviction& ev) {
  const int64_t L = cache.layers.size();
  for (int64_t l = 0; l < L; ++l) {
    auto& layer = cache.layers[l];
    if (!ev.accum[l].defined()) continue;  // a sliding layer: its window evicts
    if (layer.k.size(2) != ev.accum[l].size(2) + 1) {  // the layer's window began dropping keys mid-decode
      ev.accum[l] = at::Tensor();
      continue;
    }
    auto a = group_mean(probs[l], ev.G);  // [1, G, 1, T]
    ev.accum[l] = at::cat({ev.accum[l], at::zeros({1, ev.G, 1}, ev.accum[l].options())}, 2) + a.squeeze(2).to(ev.accum[l].scalar_type());
    if (layer.k.size(2) <= ev.budgets[l]) continue;
    model::KVView v;
    v.keys = layer.k;
    v.recent_attn = a;
    v.accum_attn = ev.accum[l];
    v.positions = layer.pos;  // after a swap below, the cache is no longer in position order
    v.layer = l;
    v.n_layers = L;
    const auto idx = model::kv_keep(ev.spec, v, ev.budgets[l]);
    const int64_t T = layer.k.size(2);
    if (ev.in_place && T == ev.budgets[l] + 1) {
      // The steady state: one token leaves. The newest token moves into its
      // slot and the cache shrinks by one: O(1) copies instead of gathering
      // the whole cache. Attention does not depend on the cache's order (keys
      // are rotated; the decode query follows every cached position), and
      // the policies choose by position, not index. The cache's tensors were
      // made by this step's append, so nothing else shares them.
      const auto dropped = T * (T - 1) / 2 - idx.sum(-1);  // [1, G]: the one index not kept
      const int64_t d = dropped.flatten()[0].item<int64_t>();
      const bool same_for_all_heads = (dropped == d).all().item<bool>();
      // Heads dropping different tokens leave the cache's one position vector
      // right for head 0 only: fine for a policy that never reads positions
      // (TOVA), since a decode query sees every cached token anyway.
      if (same_for_all_heads || !model::kv_policy_traits(ev.spec).uses_positions) {
        const int64_t last = T - 1;
        const int64_t D = layer.k.size(3);
        const auto slot = dropped.view({1, ev.G, 1});
        const auto slot_d = slot.unsqueeze(-1).expand({1, ev.G, 1, D});
        layer.k.scatter_(2, slot_d, layer.k.narrow(2, last, 1).clone());
        layer.v.scatter_(2, slot_d, layer.v.narrow(2, last, 1).clone());
        ev.accum[l].scatter_(2, slot, ev.accum[l].narrow(2, last, 1).clone());
        if (d != last) layer.pos.narrow(0, d, 1).copy_(layer.pos.narrow(0, last, 1));
        layer.k = layer.k.narrow(2, 0, last);
        layer.v = layer.v.narrow(2, 0, last);
        layer.pos = layer.pos.narrow(0, 0, last);
        ev.accum[l] = ev.accum[l].narrow(2, 0, last);
        continue;
      }
    }
    auto gather = idx.unsqueeze(-1).expand({idx.size(0), idx.size(1), idx.size(2), layer.k.size(3)});
    layer.k = layer.k.gather(2, gather);
    layer.v = layer.v.gather(2, gather);
    layer.pos = layer.pos.index_select(0, idx[0][0]);
    ev.accum[l] = ev.accum[l].gather(2, idx);
  }
}

// Decodes tokens[0..n) teacher-forced on a copy of `cache`; returns the mean
// loss of predicting tokens[1..n] and, optionally, the first query's
// attention. With `ev`, the cache is evicted back to budget after each token.
double decode_loss(model::Transformer& m, model::KVCache cache, const std::vector<int64_t>& tokens,
                   std::vector<at::Tensor>* first_attention, StepEviction* ev = nullptr) {
  double nll = 0;
  for (size_t t = 0; t + 1 < tokens.size(); ++t) {
    model::AttentionProbe probe;
    probe.rows = torch::tensor({0}, at::kLong);
    const bool look = (t == 0 && first_attention) || ev;
    auto logits = m->forward(torch::tensor({{tokens[t]}}, at::kLong), &cache, look ? &probe : nullptr);
    nll -= torch::log_softmax(logits[0][0].to(at::kFloat), -1)[tokens[t + 1]].item<double>();
    if (t == 0 && first_attention) *first_attention = probe.probs;
    if (ev) evict_step(cache, probe.probs, *ev);
  }
  return nll / double(tokens.size() - 1);
}

// Compresses each layer of the prefill's cache to its budget; returns the
// cache and the kept indices per layer ([1, G, b]).
model::KVCache compress(const Prefill& pre, const model::KVPolicySpec& spec, int64_t mean_budget, int64_t G,
                        std::vector<at::Tensor>* kept) {
  model::KVCache out = pre.cache;
  const int64_t L = pre.cache.layers.size();
  for (int64_t l = 0; l < L; ++l) {
    auto& layer = out.layers[l];
    if (pre.own_window[l]) {  // kept as the design keeps it
      kept->push_back(at::Tensor());
      continue;
    }
    const int64_t D = layer.k.size(3);
    model::KVView v;
    v.keys = layer.k;
    v.recent_attn = group_mean(pre.recent[l], G);  // the prefill kept just the observation window
    v.accum_attn = group_mean(pre.accum[l], G);
    // Expected Attention's Gaussian: the group's queries of the whole prefill.
    auto q = pre.queries[l].to(at::kDouble);  // [1, H, N, D]
    auto qg = q.reshape({1, G, -1, D});
    v.query_mean = qg.mean(2);
    auto centred = qg - v.query_mean.unsqueeze(2);
    v.query_cov = at::matmul(centred.transpose(-2, -1), centred) / double(qg.size(2));
    v.layer = l;
    v.n_layers = L;
    const auto idx = model::kv_keep(spec, v, model::layer_budget(spec, mean_budget, l, L));
    auto gather = idx.unsqueeze(-1).expand({idx.size(0), idx.size(1), idx.size(2), D});
    layer.k = layer.k.gather(2, gather);
    layer.v = layer.v.gather(2, gather);
    // Positions only feed the causal mask, and every cached key precedes the decoded queries.
    layer.pos = layer.pos.index_select(0, idx[0][0]);
    kept->push_back(idx);
  }
  return out;
}

// Mean over the compressed layers and their heads of the share of the first
// decoded query's full-cache attention on the prefix that the kept tokens carry.
double retained_mass(const std::vector<at::Tensor>& first_attn, const std::vector<at::Tensor>& kept, int64_t G) {
  double total = 0;
  int64_t rows = 0;
  for (size_t l = 0; l < kept.size(); ++l) {
    if (!kept[l].defined()) continue;
    rows += first_attn[l].size(1);
    const auto& a = first_attn[l];  // [1, H, 1, N+1]
    const int64_t H = a.size(1), per = H / G;
    const int64_t N = a.size(-1) - 1;  // the last key is the query's own token, never evicted
    for (int64_t h = 0; h < H; ++h) {
      const auto row = a[0][h][0];
      total += row.index_select(0, kept[l][0][h / per]).sum().item<double>() / row.narrow(0, 0, N).sum().item<double>();
    }
  }
  return total / double(rows);
}

// One compressed decode: compress the prefill to `budget`, then decode `tail`
// teacher-forced, evicting per step when opt.eviction and the policy say so.
struct CompressedDecode {
  double loss = 0, decode_seconds = 0;
  bool stepwise = false;
  std::vector<at::Tensor> kept;  // per layer, right after compression
};
CompressedDecode decode_compressed(model::Transformer& m, const Prefill& pre, const std::vector<int64_t>& tail,
                                   const model::KVPolicySpec& spec, int64_t budget, const KVEvalOptions& opt) {
  CompressedDecode r;
  const int64_t G = m->cfg.n_kv_heads;
  auto cache = compress(pre, spec, budget, G, &r.kept);
  auto ev = start_eviction(spec, budget, pre, r.kept, G);
  ev.in_place = opt.evict_in_place;
  r.stepwise = opt.eviction == "step" && model::kv_policy_traits(spec).evicts_each_step;
  const auto t0 = std::chrono::steady_clock::now();
  r.loss = decode_loss(m, cache, tail, nullptr, r.stepwise ? &ev : nullptr);
  r.decode_seconds = seconds_since(t0);
  return r;
}

model::KVPolicySpec policy_spec(const std::string& name, const KVEvalOptions& opt) {
  auto spec = model::parse_kv_policy(name);
  spec.sinks = opt.sinks;
  spec.window = opt.obs_window;
  return spec;
}

}  // namespace

double compressed_decode_loss(model::Transformer& m, const std::vector<int64_t>& prefix,
                              const std::vector<int64_t>& tail, const std::string& policy, int64_t budget,
                              const KVEvalOptions& opt) {
  torch::NoGradGuard no_grad;
  return decode_compressed(m, prefill(m, prefix, opt.obs_window), tail, policy_spec(policy, opt), budget, opt).loss;
}

int64_t context_of(const KVEvalOptions& opt, int64_t T_train) {
  return opt.context > 0 ? opt.context : T_train - opt.decode;
}

// The budgets as ratios of the context N: --ratios, or --budgets / N.
std::vector<double> budget_ratios(const KVEvalOptions& opt, int64_t N) {
  if (opt.budgets.empty()) return opt.ratios;
  std::vector<double> r;
  for (int64_t b : opt.budgets) {
    if (b <= 0 || b > N)
      throw Error("--budgets: " + std::to_string(b) + " tokens is outside 1.." + std::to_string(N) + " (the context)");
    r.push_back(double(b) / double(N));
  }
  return r;
}

const std::vector<config::Field<KVEvalOptions>>& kv_fields() {
  using C = KVEvalOptions;
  static const std::vector<config::Field<C>> fields = {
      {"policies", "policies", &C::policies, "kv", "comma list of KV policies"},
      {"ratios", "ratios", &C::ratios, "kv", "budgets as a fraction of the context",
       {[](const C& c) {
          return !c.ratios.empty() && std::all_of(c.ratios.begin(), c.ratios.end(), [](double r) { return r > 0 && r <= 1; });
        },
        "must list fractions in (0, 1]"}},
      {"budgets", "budgets", &C::budgets, "kv", "budgets as token counts (instead of --ratios)"},
      {"context", "context", &C::context, "kv", "prefilled tokens N (0 = T_train - decode)",
       {[](const C& c) { return c.context >= 0; }, "must be >= 0"}},
      {"decode", "decode", &C::decode, "kv", "tokens decoded after compression",
       {[](const C& c) { return c.decode >= 2; }, "must be >= 2"}},
      {"windows", "windows", &C::windows, "kv", "held-out windows", {[](const C& c) { return c.windows >= 1; }, "must be >= 1"}},
      {"sinks", "sinks", &C::sinks, "kv", "sink tokens kept by streaming and df",
       {[](const C& c) { return c.sinks >= 0; }, "must be >= 0"}},
      {"obs_window", "obs-window", &C::obs_window, "kv", "observation window of snapkv, pyramidkv, tova",
       {[](const C& c) { return c.obs_window >= 1; }, "must be >= 1"}},
      {"epsilon", "epsilon", &C::epsilon, "kv", "loss tolerance for the smallest budget",
       {[](const C& c) { return c.epsilon >= 0; }, "must be >= 0"}},
      {"gamma_from", "gamma-from", &C::gamma_from, "kv", "γ results .jsonl holding this checkpoint's record"},
      {"gamma_protocol", "gamma-protocol", &C::gamma_protocol, "kv", "which γ record of --gamma-from: taf or fixed",
       {[](const C& c) { return c.gamma_protocol == "taf" || c.gamma_protocol == "fixed"; }, "must be taf or fixed"}},
      {"mass_fractions", "f", &C::mass_fractions, "kv", "attention-mass fractions for D_f",
       {[](const C& c) {
          return std::all_of(c.mass_fractions.begin(), c.mass_fractions.end(), [](double f) { return f > 0 && f < 1; });
        },
        "must list fractions in (0, 1)"}},
      {"seed", "seed", &C::seed, "kv", "seed of the windows and passkey prompts"},
      {"eviction", "eviction", &C::eviction, "kv",
       "step: TOVA, H2O and the windows evict at every decoded token; prefill: once",
       {[](const C& c) { return c.eviction == "step" || c.eviction == "prefill"; }, "must be step or prefill"}},
      {"niah_trials", "niah-trials", &C::niah_trials, "kv", "passkey prompts of length N scored per policy and budget (0 = skip)",
       {[](const C& c) { return c.niah_trials >= 0; }, "must be >= 0"}},
      {"gmm_max_k", "gmm-max-k", &C::gmm_max_k, "kv", "query-distribution check: GMMs up to this K (0 = skip)",
       {[](const C& c) { return c.gmm_max_k >= 0; }, "must be >= 0"}},
      {"evict_in_place", nullptr, &C::evict_in_place, "", "per-step eviction in place (tests compare with re-gathering)"},
  };
  return fields;
}

void check_kv_options(const KVEvalOptions& opt, int64_t T_train) {
  config::check_flags(opt, kv_fields());
  const int64_t N = context_of(opt, T_train);
  const auto ratios = budget_ratios(opt, N);
  for (const auto& p : text::split(opt.policies)) model::parse_kv_policy(p);
  if (N <= opt.obs_window || N + opt.decode > T_train)
    throw Error("--context " + std::to_string(N) + " + --decode " + std::to_string(opt.decode) +
                " must fit in T_train " + std::to_string(T_train) + " with room for the observation window");
  const double min_ratio = *std::min_element(ratios.begin(), ratios.end());
  const int64_t floor_tokens = std::max(opt.sinks, opt.obs_window);
  if (std::llround(min_ratio * N) <= floor_tokens)
    throw Error("--ratios: " + std::to_string(min_ratio) + " x context " + std::to_string(N) + " leaves " +
                std::to_string(std::llround(min_ratio * N)) + " tokens, not above the " + std::to_string(floor_tokens) +
                " sink/observation tokens");
}

namespace {

// What eval_kv's steps share: the model, the held-out windows prefilled once
// with their full-cache decode (the reference), and the passkey prompts.
struct KVSetup {
  KVSetup(model::Transformer model, const KVEvalOptions& options) : m(std::move(model)), opt(options) {}
  model::Transformer m;
  const KVEvalOptions& opt;
  int64_t N = 0, G = 1;                                // context; KV heads
  std::vector<Prefill> pre;                            // per window
  std::vector<std::vector<int64_t>> tails;             // the tokens decoded after each prefill
  std::vector<std::vector<at::Tensor>> first_attn;     // the first decoded query's full-cache attention
  double loss_full = 0, decoded_tokens = 0, full_tok_s = 0;
  std::vector<Prefill> niah_pre;                       // passkey prompts up to the question
  std::vector<data::PasskeyExample> niah_ex;
  int64_t niah_full = 0;                               // passkeys found with the full cache
  double niah_prefix = 0;  // mean tokens compressed per prompt (the haystack before the question)
};

// γ for D_f: given, from a γ record of this checkpoint, or γ_Padé(θ, N); and where it came from.
std::pair<double, std::string> gamma_for_df(const KVEvalOptions& opt, const OpenedModel& om, double theta, int64_t N) {
  if (opt.gamma) return {*opt.gamma, "given"};
  if (!opt.gamma_from.empty()) {
    const auto rec = measured_gamma_record(om, {opt.gamma_from, opt.gamma_protocol});
    return {rec["measurement"]["gamma"].get<double>(), opt.gamma_from};
  }
  return {closed_forms::gamma_pade(theta, double(N)), "gamma_pade(theta, N)"};
}

// Prefills every window once, then decodes its tail with the full cache (the reference).
void prefill_windows(KVSetup& k, const data::TokenStream& val) {
  const auto& opt = k.opt;
  k.pre.resize(opt.windows);
  k.tails.resize(opt.windows);
  k.first_attn.resize(opt.windows);
  for (int64_t w = 0; w < opt.windows; ++w) {
    std::vector<int64_t> win(k.N + opt.decode);
    val.copy(data::mix64(opt.seed ^ uint64_t(w) * 0x9e37) % (val.size() - win.size()), win.size(), win.data());
    k.pre[w] = prefill(k.m, std::vector<int64_t>(win.begin(), win.begin() + k.N), opt.obs_window);
    k.tails[w].assign(win.begin() + k.N, win.end());
  }
  const auto t_decode = std::chrono::steady_clock::now();
  for (int64_t w = 0; w < opt.windows; ++w)
    k.loss_full += decode_loss(k.m, k.pre[w].cache, k.tails[w], &k.first_attn[w]) / opt.windows;
  k.decoded_tokens = double(opt.windows * (opt.decode - 1));
  k.full_tok_s = k.decoded_tokens / seconds_since(t_decode);
}

// Whether passkey prompt t's key ranks first when its question is read through `compressed`.
bool niah_correct(KVSetup& k, size_t t, const model::KVCache& compressed) {
  model::KVCache cache = compressed;
  const auto& ex = k.niah_ex[t];
  const std::vector<int64_t> question(ex.context.begin() + ex.question_pos, ex.context.end());
  auto last = k.m->forward(torch::tensor(question, at::kLong).unsqueeze(0), &cache)[0][-1].to(at::kFloat);
  return key_ranks_first(k.m, cache, last, ex.answer, ex.wrong);
}

// Passkey prompts of length N (the NIAH task at the prefill length), needle
// depths spread evenly. Question-agnostic, as kvpress evaluates: the
// haystack with the needle is prefilled and compressed, then the question
// is read through the compressed cache and the answer scored.
void prepare_passkeys(KVSetup& k, const data::PreparedData& data, const data::TokenStream& val) {
  const auto& opt = k.opt;
  const int64_t N = k.N;
  if (data.tokenizer_path.empty()) throw Error(data.dir + ": --niah-trials needs the run's tokenizer, and there is none (use --niah-trials 0)");
  const auto tok = data::Tokenizer::load(data.tokenizer_path);
  const data::PasskeyBuilder builder(tok);
  if (N < builder.min_length(1))
    throw Error("--niah-trials: a context of " + std::to_string(N) + " tokens cannot hold the needle and question (minimum " +
                std::to_string(builder.min_length(1)) + "); use --niah-trials 0 or a longer --context");
  for (int64_t t = 0; t < opt.niah_trials; ++t) {
    const uint64_t key = data::mix64(opt.seed ^ 0x6e1a) ^ uint64_t(t);
    std::vector<int64_t> hay(N);
    val.copy(key % (val.size() - N), N, hay.data());
    k.niah_ex.push_back(builder.make(hay.data(), N, (t + 0.5) / double(opt.niah_trials), key, 1, 9));
    const auto& ex = k.niah_ex.back();
    if (ex.question_pos <= opt.obs_window)
      throw Error("--niah-trials: the haystack before the question (" + std::to_string(ex.question_pos) +
                  " tokens) must be longer than --obs-window " + std::to_string(opt.obs_window));
    k.niah_prefix += double(ex.question_pos) / opt.niah_trials;
    k.niah_pre.push_back(prefill(k.m, std::vector<int64_t>(ex.context.begin(), ex.context.begin() + ex.question_pos), opt.obs_window));
    k.niah_full += niah_correct(k, t, k.niah_pre.back().cache);
  }
}

// The fields every record of this evaluation shares (a record's own win).
nlohmann::json shared_fields(const KVSetup& k, const OpenedModel& opened, double gamma, const std::string& gamma_source) {
  const auto& opt = k.opt;
  nlohmann::json common = opened.provenance();
  common.update({{"kind", "kv"}, {"context", k.N}, {"decode", opt.decode}, {"windows", opt.windows}, {"seed", opt.seed},
                 {"loss_full", k.loss_full}, {"gamma", gamma}, {"gamma_source", gamma_source}, {"eviction", opt.eviction},
                 {"decode_tok_per_s_full", k.full_tok_s}});
  common["ropelab"]["options"] = config::to_json(opt, kv_fields());
  if (opt.niah_trials > 0) {
    const auto ci = wilson95(k.niah_full, opt.niah_trials);
    common["niah_trials"] = opt.niah_trials;
    common["niah_rank_accuracy_full"] = double(k.niah_full) / opt.niah_trials;
    common["niah_full_ci95"] = {ci.first, ci.second};
    common["niah_rank_chance"] = 0.1;
    common["niah_prefix_tokens"] = k.niah_prefix;  // budgets (ratio x N) apply to this shorter prefix
  }
  return common;
}

// One measurement: policy at a mean per-layer budget. Also the tokens
// actually kept per layer (PyramidKV's shallow layers cap at N, so its mean
// can fall below the nominal budget), decode speed, and retrieval.
nlohmann::json measure(KVSetup& k, const model::KVPolicySpec& spec, int64_t budget) {
  const auto& opt = k.opt;
  double loss = 0, mass = 0, kept_mean = 0, decode_s = 0;
  bool stepwise = false;
  for (int64_t w = 0; w < opt.windows; ++w) {
    const auto d = decode_compressed(k.m, k.pre[w], k.tails[w], spec, budget, opt);
    loss += d.loss / opt.windows;
    decode_s += d.decode_seconds;
    stepwise = d.stepwise;
    mass += retained_mass(k.first_attn[w], d.kept, k.G) / opt.windows;
    const auto compressed = std::count_if(d.kept.begin(), d.kept.end(), [](const at::Tensor& t) { return t.defined(); });
    for (const auto& kept : d.kept)
      if (kept.defined()) kept_mean += double(kept.size(2)) / double(compressed) / opt.windows;
  }
  nlohmann::json r = {{"loss", loss}, {"rel_loss_increase", loss / k.loss_full - 1}, {"retained_mass", mass},
                      {"kept_mean", kept_mean}, {"stepwise_eviction", stepwise},
                      {"decode_tok_per_s", k.decoded_tokens / decode_s}};
  if (opt.niah_trials > 0) {
    int64_t ok = 0;
    for (size_t t = 0; t < k.niah_pre.size(); ++t) {
      std::vector<at::Tensor> kept;
      ok += niah_correct(k, t, compress(k.niah_pre[t], spec, budget, k.G, &kept));
    }
    const auto ci = wilson95(ok, opt.niah_trials);
    r["niah_rank_accuracy"] = double(ok) / opt.niah_trials;
    r["niah_ci95"] = {ci.first, ci.second};
  }
  return r;
}

// Mean over windows, layers and heads of the share of the first decoded
// query's full-cache attention on the prefix that its last D tokens carry
// (sinks excluded): the measured counterpart of f for D_f's window alone.
double window_mass(const KVSetup& k, int64_t D) {
  double total = 0;
  int64_t count = 0;
  for (const auto& layers : k.first_attn)
    for (size_t l = 0; l < layers.size(); ++l) {  // [1, H, 1, N+1]; the last key is the query's own token
      if (k.pre.front().own_window[l]) continue;  // a sliding layer: not compressed, not counted
      const auto& a = layers[l];
      const int64_t N = a.size(-1) - 1;
      const auto row = a[0].select(1, 0).narrow(1, 0, N).to(at::kDouble);  // [H, N]
      total += (row.narrow(1, N - D, D).sum(1) / row.sum(1)).sum().item<double>();
      count += row.size(0);
    }
  return total / double(count);
}

// The closed-form window: sinks + the last D_f tokens, one measurement per f.
// The mass is compared like for like: the window alone (measured, sinks
// excluded) against the power law's share of the window, and the whole
// kept cache (measured retained_mass, sinks included) against the power
// law's share of the window and the sinks.
void measure_df(KVSetup& k, const model::KVPolicySpec& spec, double gamma, RecordWriter& records) {
  for (double f : k.opt.mass_fractions) {
    const int64_t Df = closed_forms::D_f_discrete(gamma, k.N, f);
    const double Dc = closed_forms::D_f_continuum(gamma, double(k.N), f);
    const int64_t budget = std::min<int64_t>(k.N, k.opt.sinks + Df);
    const int64_t sinks = budget - Df;  // the sinks the budget leaves room for
    auto rec = measure(k, spec, budget);
    rec.update({{"policy", spec.name}, {"f", f}, {"D_f_discrete", Df}, {"D_f_continuum", Dc}, {"budget", budget},
                {"ratio", double(budget) / k.N}, {"predicted_mass", f}, {"sinks", sinks},
                {"window_mass", window_mass(k, Df)},
                {"predicted_window_mass", closed_forms::power_law_mass(gamma, k.N, Df, 0)},
                {"predicted_retained_mass", closed_forms::power_law_mass(gamma, k.N, Df, sinks)},
                {"mass_counting", "window_mass and predicted_window_mass count the last D_f tokens only; "
                                  "retained_mass and predicted_retained_mass count those and the sinks"}});
    records.write(rec);
  }
}

// One measurement per budget ratio, then the policy's summary: the smallest
// ratio within ε of the full cache, beside D_f.
void measure_ratios(KVSetup& k, const model::KVPolicySpec& spec, const std::vector<double>& ratios, double gamma,
                    RecordWriter& records, Progress& progress, int64_t& done) {
  const auto& opt = k.opt;
  const std::string& name = spec.name;
  std::optional<double> smallest;
  for (double r : ratios) {
    const int64_t budget = std::llround(r * k.N);
    auto rec = measure(k, spec, budget);
    if (rec["rel_loss_increase"].get<double>() <= opt.epsilon && (!smallest || r < *smallest)) smallest = r;
    rec.update({{"policy", name}, {"ratio", r}, {"budget", budget}});
    records.write(rec);
    progress.update(++done, name + " @" + std::to_string(r));
  }
  nlohmann::json sum = {{"kind", "kv_summary"}, {"policy", name}, {"epsilon", opt.epsilon},
                        {"smallest_ratio_within_epsilon", smallest ? nlohmann::json(*smallest) : nlohmann::json(nullptr)},
                        {"smallest_budget_within_epsilon", smallest ? nlohmann::json(std::llround(*smallest * k.N)) : nlohmann::json(nullptr)}};
  nlohmann::json df = nlohmann::json::object();
  for (double f : opt.mass_fractions) {
    char key[16];
    std::snprintf(key, sizeof key, "%.2f", f);
    df[key] = {{"discrete", closed_forms::D_f_discrete(gamma, k.N, f)}, {"continuum", closed_forms::D_f_continuum(gamma, double(k.N), f)}};
  }
  sum["D_f"] = df;
  records.write(sum);
}

// Behind Expected Attention: is each (layer, KV head)'s pre-RoPE query
// distribution one Gaussian? Pool the group's heads over every window.
void query_gmm_records(const KVSetup& k, const model::ModelConfig& cfg, RecordWriter& records) {
  const int64_t L = cfg.n_layers, D = cfg.d_head, G = k.G;
  for (int64_t l = 0; l < L; ++l)
    for (int64_t g = 0; g < G; ++g) {
      std::vector<at::Tensor> xs;
      for (const auto& p : k.pre) xs.push_back(p.queries_pre_rope[l].reshape({G, -1, D})[g]);
      const auto sel = select_gmm(at::cat(xs), k.opt.gmm_max_k);
      nlohmann::json bics = nlohmann::json::array();
      for (const auto& f : sel.fits) bics.push_back(f.bic);
      records.write({{"kind", "query_gmm"}, {"layer", l}, {"kv_head", g}, {"n_samples", at::cat(xs).size(0)}, {"dim", D},
                     {"best_K", sel.best_K}, {"delta_BIC_vs_K1", sel.delta_bic}, {"BIC", bics}});
    }
}

}  // namespace

std::vector<nlohmann::json> eval_kv(const std::string& ckpt_path, const KVEvalOptions& opt) {
  auto opened = open_model(ckpt_path, opt.open);
  const auto& cfg = opened.model->cfg;
  check_kv_options(opt, cfg.T_train);
  KVSetup k(opened.model, opt);
  k.N = context_of(opt, cfg.T_train);
  k.G = cfg.n_kv_heads;
  const auto data = opened.data();
  const data::TokenStream val(data.val_shards);
  const auto [gamma, gamma_source] = gamma_for_df(opt, opened, cfg.rope_theta, k.N);

  torch::NoGradGuard no_grad;
  prefill_windows(k, val);
  if (opt.niah_trials > 0) prepare_passkeys(k, data, val);
  RecordWriter records(opt.out, shared_fields(k, opened, gamma, gamma_source));
  const auto policies = text::split(opt.policies);
  const auto ratios = budget_ratios(opt, k.N);
  Progress progress("kv", static_cast<int64_t>(policies.size() * ratios.size()));
  int64_t done = 0;
  for (const auto& name : policies) {
    const auto spec = policy_spec(name, opt);
    if (model::kv_policy_traits(spec).closed_form_window) {
      measure_df(k, spec, gamma, records);
      progress.update(done += ratios.size(), name);
    } else {
      measure_ratios(k, spec, ratios, gamma, records, progress, done);
    }
  }
  if (opt.gmm_max_k > 0) query_gmm_records(k, cfg, records);
  progress.finish(std::to_string(records.records().size()) + " records");
  return records.take();
}

std::string kv_table(const std::vector<nlohmann::json>& records) {
  std::ostringstream out;
  char line[240];
  std::snprintf(line, sizeof line, "%-10s %6s %7s %9s %10s %7s %6s %9s\n", "policy", "ratio", "budget", "loss", "Δloss/full",
                "mass", "niah", "decode/s");
  out << line;
  for (const auto& r : records) {
    if (r["kind"] != "kv") continue;
    const std::string niah = r.contains("niah_rank_accuracy") ? std::to_string(r["niah_rank_accuracy"].get<double>()).substr(0, 4) : "-";
    std::snprintf(line, sizeof line, "%-10s %6.3f %7lld %9.4f %+9.2f%% %7.3f %6s %9.0f%s%s\n", r["policy"].get<std::string>().c_str(),
                  r["ratio"].get<double>(), (long long)r["budget"].get<int64_t>(), r["loss"].get<double>(),
                  100 * r["rel_loss_increase"].get<double>(), r["retained_mass"].get<double>(), niah.c_str(),
                  r.value("decode_tok_per_s", 0.0), r.value("stepwise_eviction", false) ? "  per-step" : "",
                  r.contains("f") ? ("  (D_f at f=" + std::to_string(r["f"].get<double>()).substr(0, 4) + ")").c_str() : "");
    out << line;
  }
  for (const auto& r : records)
    if (r["kind"] == "kv_summary") {
      out << r["policy"].get<std::string>() << ": smallest ratio within " << r["epsilon"].get<double>() * 100
          << "% of the full cache: " << (r["smallest_ratio_within_epsilon"].is_null() ? std::string("none tested")
                                                                                        : r["smallest_ratio_within_epsilon"].dump())
          << "\n";
    }
  for (const auto& r : records)
    if (r["kind"] == "query_gmm")
      out << "queries layer " << r["layer"] << " kv-head " << r["kv_head"] << ": BIC-best K = " << r["best_K"]
          << " (ΔBIC vs K=1: " << r["delta_BIC_vs_K1"].get<double>() << ")\n";
  if (!records.empty()) {
    const auto& r = records[0];
    out << "full cache: loss " << r["loss_full"].get<double>() << ", decode " << std::llround(r.value("decode_tok_per_s_full", 0.0))
        << " tok/s";
    if (r.contains("niah_rank_accuracy_full"))
      out << ", passkey rank accuracy " << r["niah_rank_accuracy_full"].get<double>() << " over " << r["niah_trials"]
          << " prompts (chance 0.1)";
    out << "; D_f uses γ = " << r["gamma"].get<double>() << " (" << r["gamma_source"].get<std::string>() << ")\n";
  }
  return out.str();
}

}  // namespace ropelab::eval
