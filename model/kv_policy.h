// KV-cache compression policies behind one interface: given what a policy
// may look at (keys, attention of recent queries, accumulated attention,
// query statistics) and a token budget, which cached tokens survive, per
// (batch, KV head). Every policy is a scoring rule plus "keep the top
// budget", except the windows, which keep positions by rule.
//
//   full         everything (the reference)
//   recent       the last `budget` tokens
//   streaming    `sinks` first tokens + the most recent (StreamingLLM)
//   h2o          heavy hitters by accumulated attention + a recent half (H2O)
//   tova         the tokens the newest query attends to most (TOVA)
//   snapkv       attention of an observation window of the last queries,
//                max-pooled over neighbours, + that window (SnapKV)
//   pyramidkv    SnapKV with budgets shrinking linearly with depth (PyramidKV)
//   keynorm      the keys with the smallest L2 norm (high-norm keys dropped)
//   expected     E_q[exp(q·k/√d)] for q ~ N(μ, Σ) fitted to recent queries
//                (Expected Attention): exp(μ·k/√d + kᵀΣk / 2d)
//   df           sinks + the last D_f tokens, D_f from the closed form (γ, N, f)
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace ropelab::model {

struct KVPolicySpec {
  std::string name;      // one of the list above
  int64_t sinks = 4;     // streaming, df: first tokens always kept
  int64_t window = 8;    // snapkv/pyramidkv observation window; h2o recent share is budget/2
  int64_t pool = 7;      // snapkv pooling kernel
};

// What sets a policy apart, declared with it (kv_policies() in kv_policy.cpp).
struct KVPolicyTraits {
  const char* name;
  // Chooses by the tokens' positions (the windows, H2O's recent half,
  // SnapKV's observation window), so the positions must stay right for every KV head.
  bool uses_positions;
  // Defined by per-step eviction (TOVA, H2O) or a sliding window: `eval kv`
  // evicts at every decoded token unless --eviction prefill.
  bool evicts_each_step;
  // Its budget is the closed-form window D_f (γ, N, f), not a ratio.
  bool closed_form_window;
};
const std::vector<KVPolicyTraits>& kv_policies();  // in the order of the list above
const KVPolicyTraits& kv_policy_traits(const KVPolicySpec& p);

std::vector<std::string> kv_policy_names();
KVPolicySpec parse_kv_policy(const std::string& name);  // throws Error naming an unknown policy

// What a policy may look at, for one layer. B batch, G KV heads, T cached tokens.
struct KVView {
  at::Tensor keys;         // [B, G, T, D] (rotated)
  at::Tensor recent_attn;  // [B, G, Q, T] attention of the last Q queries (mean over each group's heads)
  at::Tensor accum_attn;   // [B, G, T] attention accumulated by every query so far (h2o); may be undefined
  at::Tensor query_mean;   // [B, G, D] mean of recent queries (expected); may be undefined
  at::Tensor query_cov;    // [B, G, D, D] their covariance (expected); may be undefined
  // [T] int64: each cached token's position. The window policies (recent,
  // streaming, df) and H2O's recent half choose by position, so the cache
  // need not be in position order; undefined means index order (0..T-1).
  at::Tensor positions;
  int64_t layer = 0, n_layers = 1;
};

// The layer's budget for a policy and a mean per-layer budget (PyramidKV
// redistributes it over depth; the others keep it as is).
int64_t layer_budget(const KVPolicySpec& p, int64_t mean_budget, int64_t layer, int64_t n_layers);

// Indices of the kept tokens (into the cache as it is), ascending: [B, G, min(budget, T)] int64.
// Throws Error if budget < sinks for the policies that keep sinks.
at::Tensor kv_keep(const KVPolicySpec& p, const KVView& v, int64_t budget);

}  // namespace ropelab::model
