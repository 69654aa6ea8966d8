#include "model/kv_policy.h"

#include <cmath>

#include "common/error.h"

namespace ropelab::model {
namespace {

// Top-`budget` tokens by score, plus any forced-in tokens, returned ascending.
at::Tensor top_with(const at::Tensor& score /*[B,G,T]*/, int64_t budget, const at::Tensor& forced /*[T] bool*/) {
  const int64_t T = score.size(-1);
  if (budget >= T) return at::arange(T, score.options().dtype(at::kLong)).expand({score.size(0), score.size(1), T}).contiguous();
  auto s = score.to(at::kDouble).clone();
  if (forced.defined()) s.masked_fill_(forced.to(s.device()), std::numeric_limits<double>::infinity());
  return std::get<0>(std::get<1>(s.topk(budget, -1)).sort(-1));
}

// [T] bool: the `first` earliest and the `last` latest tokens by position.
at::Tensor positions_mask(const at::Tensor& pos /*[T] double*/, int64_t first, int64_t last) {
  const int64_t T = pos.size(0);
  const auto sorted = std::get<0>(pos.sort());
  auto mask = at::zeros({T}, pos.options().dtype(at::kBool));
  if (first > 0) mask |= pos <= sorted[std::min(first, T) - 1];
  if (last > 0) mask |= pos >= sorted[std::max<int64_t>(T - last, 0)];
  return mask;
}

}  // namespace

const std::vector<KVPolicyTraits>& kv_policies() {
  static const std::vector<KVPolicyTraits> all = {
      // name, uses positions, evicts each step, closed-form window
      {"full", false, false, false},     {"recent", true, true, false},     {"streaming", true, true, false},
      {"h2o", true, true, false},        {"tova", false, true, false},      {"snapkv", true, false, false},
      {"pyramidkv", true, false, false}, {"keynorm", false, false, false}, {"expected", false, false, false},
      {"df", true, true, true}};
  return all;
}

const KVPolicyTraits& kv_policy_traits(const KVPolicySpec& p) {
  for (const auto& t : kv_policies())
    if (p.name == t.name) return t;
  parse_kv_policy(p.name);  // throws, naming the known ones
  throw Error("unknown KV policy \"" + p.name + "\"");
}

std::vector<std::string> kv_policy_names() {
  std::vector<std::string> names;
  for (const auto& t : kv_policies()) names.push_back(t.name);
  return names;
}

KVPolicySpec parse_kv_policy(const std::string& name) {
  for (const auto& n : kv_policy_names())
    if (n == name) return {name};
  std::string all;
  for (const auto& n : kv_policy_names()) all += (all.empty() ? "" : ", ") + n;
  throw Error("unknown KV policy \"" + name + "\" (expected one of " + all + ")");
}

int64_t layer_budget(const KVPolicySpec& p, int64_t mean_budget, int64_t layer, int64_t n_layers) {
  if (p.name != "pyramidkv" || n_layers == 1) return mean_budget;
  // Linear from 1.5x at the first layer to 0.5x at the last: the mean is kept.
  const double f = 1.5 - double(layer) / double(n_layers - 1);
  return std::max<int64_t>(p.window + 1, static_cast<int64_t>(std::llround(f * mean_budget)));
}

at::Tensor kv_keep(const KVPolicySpec& p, const KVView& v, int64_t budget) {
  const int64_t B = v.keys.size(0), G = v.keys.size(1), T = v.keys.size(2), D = v.keys.size(3);
  const auto opts = v.keys.options();
  need(budget > 0, "KV budget must be positive, got " + std::to_string(budget));
  const at::Tensor none;
  if (p.name == "full" || budget >= T)
    return at::arange(T, opts.dtype(at::kLong)).expand({B, G, T}).contiguous();
  const at::Tensor pos = v.positions.defined() ? v.positions.to(at::kDouble) : at::arange(T, opts.dtype(at::kDouble));
  if (p.name == "recent") return top_with(pos.expand({B, G, T}), budget, none);
  if (p.name == "streaming" || p.name == "df") {
    need(budget > p.sinks, p.name + ": budget " + std::to_string(budget) + " must exceed the " + std::to_string(p.sinks) + " sink tokens");
    return top_with(pos.expand({B, G, T}), budget, positions_mask(pos, p.sinks, 0));  // the sinks, then the latest
  }
  if (p.name == "keynorm") return top_with(-v.keys.to(at::kDouble).norm(2, -1), budget, none);
  if (p.name == "h2o") {
    need(v.accum_attn.defined(), "h2o needs the accumulated attention");
    const int64_t recent = budget / 2;
    return top_with(v.accum_attn, budget, positions_mask(pos, 0, recent));
  }
  if (p.name == "tova") {
    need(v.recent_attn.defined(), "tova needs the newest query's attention");
    return top_with(v.recent_attn.select(2, v.recent_attn.size(2) - 1), budget, none);
  }
  if (p.name == "snapkv" || p.name == "pyramidkv") {
    need(v.recent_attn.defined(), p.name + " needs the observation window's attention");
    const int64_t w = std::min<int64_t>(p.window, v.recent_attn.size(2));
    need(budget > w, p.name + ": budget " + std::to_string(budget) + " must exceed the observation window " + std::to_string(w));
    auto votes = v.recent_attn.narrow(2, v.recent_attn.size(2) - w, w).sum(2);  // [B,G,T]
    auto pooled = at::max_pool1d(votes.reshape({B * G, 1, T}).to(at::kFloat), p.pool, 1, p.pool / 2).reshape({B, G, T});
    return top_with(pooled, budget, positions_mask(pos, 0, w));
  }
  if (p.name == "expected") {
    need(v.query_mean.defined() && v.query_cov.defined(), "expected needs the query mean and covariance");
    auto k = v.keys.to(at::kDouble);
    auto mu = v.query_mean.to(at::kDouble).unsqueeze(-1);                      // [B,G,D,1]
    auto lin = at::matmul(k, mu).squeeze(-1) / std::sqrt(double(D));          // μ·k/√d
    auto quad = (at::matmul(k, v.query_cov.to(at::kDouble)) * k).sum(-1) / (2.0 * D);  // kᵀΣk/2d
    return top_with(lin + quad, budget, none);  // log of the expected exp-score
  }
  throw Error("unknown KV policy \"" + p.name + "\"");
}

}  // namespace ropelab::model
