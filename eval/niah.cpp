#include "eval/niah.h"

#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "common/config_fields.h"
#include "common/error.h"
#include "common/io.h"
#include "common/progress.h"
#include "data/loader.h"
#include "data/passkey.h"
#include "data/prepare.h"
#include "eval/alpha_star.h"
#include "eval/evaluation.h"
#include "theory/gamma_record.h"
#include "train/checkpoint.h"

namespace ropelab::eval {
namespace {

int64_t parse_length(const std::string& s, int64_t T_train) {
  size_t used = 0;
  double v = -1;
  try { v = std::stod(s, &used); } catch (...) { used = 0; }
  const bool mult = used + 1 == s.size() && s.back() == 'x';
  if (!(used == s.size() || mult) || !(v > 0))
    throw Error("--lengths: \"" + s + "\" is not a token count or a multiple of T_train such as 4x");
  return mult ? static_cast<int64_t>(v * T_train + 0.5) : static_cast<int64_t>(v);
}

// Rough peak bytes of one forward at length L: logits, activations, one score chunk.
double forward_bytes(const model::ModelConfig& c, int64_t L) {
  return 4.0 * L * (c.vocab_size + 12.0 * c.d_model * c.n_layers + 2.0 * c.n_kv_heads * c.d_head * c.n_layers) +
         (64 << 20);
}

double physical_memory_bytes() { return double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE)); }

// Sum of log-probabilities of `cand` continuing the cached context whose
// last logits are `last`.
double continuation_logprob(model::Transformer& m, const model::KVCache& ctx, const at::Tensor& last,
                            const std::vector<int64_t>& cand, const model::AttentionSettings* settings) {
  double lp = torch::log_softmax(last, -1)[cand[0]].item<double>();
  if (cand.size() > 1) {
    model::KVCache c = ctx;  // cached tensors are never modified in place: a shallow copy is a fork
    auto ids = torch::tensor(std::vector<int64_t>(cand.begin(), cand.end() - 1), at::kLong).unsqueeze(0);
    auto logp = torch::log_softmax(m->forward(ids, &c, nullptr, settings)[0].to(at::kFloat), -1);
    for (size_t i = 1; i < cand.size(); ++i) lp += logp[i - 1][cand[i]].item<double>();
  }
  return lp;
}

std::vector<int64_t> greedy(model::Transformer& m, const model::KVCache& ctx, at::Tensor last, size_t n,
                            const model::AttentionSettings* settings) {
  model::KVCache c = ctx;
  std::vector<int64_t> out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(last.argmax().item<int64_t>());
    last = m->forward(torch::tensor({{out.back()}}, at::kLong), &c, nullptr, settings)[0][0];
  }
  return out;
}

}  // namespace

bool key_ranks_first(model::Transformer& m, const model::KVCache& ctx, const at::Tensor& last,
                     const std::vector<int64_t>& answer, const std::vector<std::vector<int64_t>>& wrong,
                     const model::AttentionSettings* settings) {
  const double truth = continuation_logprob(m, ctx, last, answer, settings);
  for (const auto& w : wrong)
    if (continuation_logprob(m, ctx, last, w, settings) >= truth) return false;
  return true;
}

namespace {

std::string trimmed(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\n"));
  s.erase(s.find_last_not_of(" \t\n.") + 1);
  return s;
}

}  // namespace

std::pair<double, double> wilson95(int64_t k, int64_t n) {
  if (n == 0) return {0, 1};
  const double z = 1.959963984540054, p = double(k) / n, z2n = z * z / n;
  const double centre = (p + z2n / 2) / (1 + z2n);
  const double half = z * std::sqrt(p * (1 - p) / n + z2n / (4.0 * n)) / (1 + z2n);
  // At k = 0 and k = n the bounds are exactly 0 and 1; rounding would exclude them.
  return {k == 0 ? 0.0 : std::max(0.0, centre - half), k == n ? 1.0 : std::min(1.0, centre + half)};
}

namespace {

// Each swept family with a closed form (ntk, ntk-aware, yarn) gets its α_opt
// points, so the α* table has the accuracy at them; a label listed twice runs once.
std::vector<model::ScalingMethod> with_closed_forms(std::vector<model::ScalingMethod> methods, bool measured) {
  std::vector<std::string> labels;
  for (const auto& m : methods)
    if (!m.sweep.empty() && model::rope_method(m.kind).closed_form) {
      labels.push_back(m.kind + ":alpha_opt");
      if (measured) labels.push_back(m.kind + ":alpha_opt_measured");
    }
  for (const auto& l : labels) methods.push_back(model::parse_scaling_methods(l).at(0));
  std::vector<model::ScalingMethod> once;
  std::set<std::string> seen;
  for (auto& m : methods)
    if (seen.insert(m.label()).second) once.push_back(std::move(m));
  return once;
}

}  // namespace

const std::vector<config::Field<NiahOptions>>& niah_fields() {
  using C = NiahOptions;
  static const std::vector<config::Field<C>> fields = {
      {"lengths", "lengths", &C::lengths, "niah", "context lengths: tokens or multiples of T_train (4x)",
       {[](const C& c) { return !c.lengths.empty(); }, "must not be empty"}},
      {"depths", "depths", &C::depths, "niah", "needle depths in [0,1]",
       {[](const C& c) {
          return !c.depths.empty() && std::all_of(c.depths.begin(), c.depths.end(), [](double d) { return d >= 0 && d <= 1; });
        },
        "must list depths in [0, 1]"}},
      {"trials", "trials", &C::trials, "niah", "trials per (method, length, depth)",
       {[](const C& c) { return c.trials > 0; }, "must be > 0"}},
      {"scaling", "scaling", &C::scaling, "niah",
       "KIND[:FACTOR][:KEY=VALUE...], KIND a method of `ropelab rope list` (none, pi:S, ntk:A|alpha_opt|alpha_opt_measured, "
       "ntk-aware:A, dynamic[:S], yarn:S, llama3:S, proportional, logn, ...); "
       "sweeps KIND-sweep:LO..HI:xR, e.g. ntk-sweep:0.25..64:x2"},
      {"n_keys", "keys", &C::n_keys, "niah", "needles per prompt (>1: multi-key, one asked)",
       {[](const C& c) { return c.n_keys >= 1 && c.n_keys <= 8; }, "must be 1..8"}},
      {"gamma_target", "gamma-target", &C::gamma_target, "niah", "γ target of α_opt",
       {[](const C& c) { return c.gamma_target > -1 && c.gamma_target < 1; }, "must be in (-1, 1)"}},
      {"gamma_from", "gamma-from", &C::gamma_from, "niah", "γ results .jsonl holding this checkpoint's record (alpha_opt_measured)"},
      {"gamma_protocol", "gamma-protocol", &C::gamma_protocol, "niah", "which γ record of --gamma-from: taf or fixed",
       {[](const C& c) { return c.gamma_protocol == "taf" || c.gamma_protocol == "fixed"; }, "must be taf or fixed"}},
      {"seed", "seed", &C::seed, "niah", "seed of the prompts and windows"},
      {"ppl_windows", "ppl-windows", &C::ppl_windows, "niah", "held-out windows for perplexity (0 = skip)",
       {[](const C& c) { return c.ppl_windows >= 0; }, "must be >= 0"}},
      {"no_generation", "no-generation", &C::no_generation, "niah", "skip greedy exact-match scoring", {}, false, true},
  };
  return fields;
}

NiahPlan plan_niah(const NiahOptions& opt, const model::ModelConfig& cfg) {
  NiahPlan plan;
  config::check_flags(opt, niah_fields());
  const double budget = 0.8 * physical_memory_bytes();
  for (const auto& s : opt.lengths) {
    const int64_t L = parse_length(s, cfg.T_train);
    if (forward_bytes(cfg, L) > budget)
      throw Error("--lengths: " + s + " (" + std::to_string(L) + " tokens) needs about " +
                  std::to_string(int64_t(forward_bytes(cfg, L) / (1 << 20))) + " MiB, more than this machine's memory allows");
    plan.lengths.push_back(L);
  }
  plan.methods = with_closed_forms(model::parse_scaling_methods(opt.scaling), !opt.gamma_from.empty());
  for (const auto& m : plan.methods)
    if (m.measured_gamma && opt.gamma_from.empty())
      throw Error("--scaling " + m.label() + " needs --gamma-from (a γ results .jsonl written by `ropelab eval gamma`)");
  // read_jsonl reads a missing file as empty, which would read as "no record for this checkpoint".
  if (!opt.gamma_from.empty() && !io::exists(opt.gamma_from))
    throw Error("--gamma-from " + opt.gamma_from + ": no such file");
  return plan;
}

namespace {

// What the cells of eval_niah read: the model, the run's tokenizer, and held-out text.
struct NiahData {
  model::Transformer m;
  const NiahOptions& opt;
  const data::Tokenizer& tok;
  const data::PasskeyBuilder& builder;
  const data::TokenStream& val;
};

// Each length holds the needle(s) and question, and the held-out text is longer.
void check_lengths(const NiahData& d, const NiahPlan& plan) {
  for (int64_t L : plan.lengths) {
    if (L < d.builder.min_length(d.opt.n_keys))
      throw Error("--lengths: " + std::to_string(L) + " tokens cannot hold the needle(s) and question (minimum " +
                  std::to_string(d.builder.min_length(d.opt.n_keys)) + ")");
    if (uint64_t(L + 1) > d.val.size())
      throw Error("held-out text has only " + std::to_string(d.val.size()) + " tokens, fewer than " + std::to_string(L));
  }
}

// One (method, length, depth) cell: `trials` haystacks with a needle, scored
// by key ranking and (unless opt.no_generation) greedy exact match.
nlohmann::json niah_cell(NiahData& d, const model::ScalingMethod& method, int64_t L, size_t di) {
  const auto& opt = d.opt;
  const auto& cfg = d.m->cfg;
  int64_t rank_ok = 0, exact_ok = 0;
  nlohmann::json example;  // the first trial, for a human look
  for (int64_t t = 0; t < opt.trials; ++t) {
    const uint64_t key = data::mix64(data::mix64(opt.seed) ^ data::mix64(uint64_t(L) * 1315423911u + di)) ^ uint64_t(t);
    std::vector<int64_t> hay(L);
    d.val.copy(key % (d.val.size() - L), L, hay.data());
    const auto ex = d.builder.make(hay.data(), L, opt.depths[di], key, opt.n_keys, 9);
    const auto settings = model::scaling_settings(method, cfg, L + ex.answer.size(), L, opt.gamma_target);
    model::KVCache ctx;
    auto ids = torch::tensor(ex.context, at::kLong).unsqueeze(0);
    auto last = d.m->forward(ids, &ctx, nullptr, &settings)[0][-1].to(at::kFloat);
    rank_ok += key_ranks_first(d.m, ctx, last, ex.answer, ex.wrong, &settings);
    if (!opt.no_generation) {
      const auto gen = greedy(d.m, ctx, last, ex.answer.size(), &settings);
      const std::string said = trimmed(d.tok.decode(std::vector<int>(gen.begin(), gen.end())));
      exact_ok += said == ex.key;
      if (t == 0) example = {{"key", ex.key}, {"generated", said}};
    }
  }
  const auto rci = wilson95(rank_ok, opt.trials), eci = wilson95(exact_ok, opt.trials);
  nlohmann::json rec = {{"kind", "niah"}, {"task", opt.n_keys == 1 ? "passkey" : "multikey"}, {"n_keys", opt.n_keys},
                        {"depth", opt.depths[di]}, {"trials", opt.trials},
                        {"rank_accuracy", double(rank_ok) / opt.trials}, {"rank_ci95", {rci.first, rci.second}},
                        {"rank_chance", 0.1}};
  if (!opt.no_generation)
    rec.update({{"exact_accuracy", double(exact_ok) / opt.trials}, {"exact_ci95", {eci.first, eci.second}},
                {"example", example}});
  return rec;
}

// Perplexity of held-out windows of length L under the method.
nlohmann::json perplexity_record(NiahData& d, const model::ScalingMethod& method, int64_t L) {
  const auto& opt = d.opt;
  double nll = 0;
  int64_t n = 0;
  const auto settings = model::scaling_settings(method, d.m->cfg, L, L, opt.gamma_target);
  for (int64_t w = 0; w < opt.ppl_windows; ++w) {
    std::vector<int64_t> win(L + 1);
    d.val.copy(data::mix64(opt.seed ^ uint64_t(w) ^ 0xfeed) % (d.val.size() - L), L + 1, win.data());
    auto t = torch::tensor(win, at::kLong).unsqueeze(0);
    nll += d.m->loss(t.narrow(1, 0, L), t.narrow(1, 1, L), &settings).item<double>() * L;
    n += L;
  }
  return {{"kind", "perplexity"}, {"windows", opt.ppl_windows}, {"nll", nll / n}, {"perplexity", std::exp(nll / n)}};
}

// The checkpoint's measured γ from --gamma-from, set into every
// alpha_opt_measured method; what the records say about it (null when no method needs it).
nlohmann::json measured_gamma(NiahPlan& plan, const NiahOptions& opt, const OpenedModel& om) {
  if (std::none_of(plan.methods.begin(), plan.methods.end(), [](const auto& m) { return m.measured_gamma; }))
    return nullptr;
  const auto rec = measured_gamma_record(om, {opt.gamma_from, opt.gamma_protocol});
  const auto& meas = rec["measurement"];
  for (auto& m : plan.methods)
    if (m.measured_gamma) m.gamma = meas["gamma"].get<double>();
  return {{"gamma", meas["gamma"]}, {"ci95", {meas.value("gamma_ci95_lo", nlohmann::json()), meas.value("gamma_ci95_hi", nlohmann::json())}},
          {"protocol", meas.value("protocol", nlohmann::json())}, {"from", opt.gamma_from},
          {"record_step", rec.value("step", nlohmann::json())}};
}

std::string alpha_source(const model::ScalingMethod& m) {
  return !m.alpha_opt ? "fixed" : m.measured_gamma ? "alpha_opt_measured" : "alpha_opt";
}

// One method's prompts at one length, pooled over depths.
nlohmann::json pooled_record(const model::ScalingMethod& method, const eval::AlphaPoint& p, int64_t exact_hits,
                             const NiahOptions& opt) {
  const auto rci = wilson95(p.hits, p.n), eci = wilson95(exact_hits, p.n);
  nlohmann::json rec = {{"kind", "niah_pooled"}, {"method", method.label()}, {"family", method.kind},
                        {"alpha_source", p.source}, {"scaling_factor", p.factor}, {"length", p.length},
                        {"depths", opt.depths}, {"trials", p.n}, {"rank_hits", p.hits},
                        {"rank_accuracy", double(p.hits) / p.n}, {"rank_ci95", {rci.first, rci.second}},
                        {"rank_chance", 0.1}};
  if (!method.sweep.empty()) rec["sweep"] = method.sweep;
  if (method.alpha_opt) rec["alpha_opt_gamma"] = p.gamma;
  if (!opt.no_generation)
    rec.update({{"exact_accuracy", double(exact_hits) / p.n}, {"exact_ci95", {eci.first, eci.second}}});
  return rec;
}

// One (method, length): a record per depth, the depths pooled, then perplexity.
// A method that cannot be applied at this length (α_opt undefined for its γ,
// or outside its kind's domain) is skipped and says why.
AlphaPoint measure_at_length(NiahData& d, const model::ScalingMethod& method, int64_t L, RecordWriter& records,
                             Progress& progress, int64_t& done) {
  const auto& opt = d.opt;
  AlphaPoint p{method.kind, alpha_source(method)};
  p.method = method.label();
  p.length = L;
  if (method.alpha_opt) p.gamma = method.measured_gamma ? method.gamma.value_or(NAN) : opt.gamma_target;
  p.unavailable = model::scaling_unavailable(method, d.m->cfg, L, opt.gamma_target);
  const bool defined = !method.alpha_opt || (p.gamma > -1 && p.gamma < 1);  // else θ_design has no value
  if (defined) p.factor = model::scaling_factor(method, d.m->cfg, L, opt.gamma_target);
  if (!p.unavailable.empty()) {
    std::fprintf(stderr, "niah: skipping %s at length %lld: %s\n", method.label().c_str(), (long long)L,
                 p.unavailable.c_str());
    progress.update(done += int64_t(opt.depths.size()), method.label() + " skipped");
    return p;
  }
  const nlohmann::json where = {{"method", method.label()}, {"scaling_factor", p.factor}, {"length", L}};
  int64_t exact_hits = 0;
  for (size_t di = 0; di < opt.depths.size(); ++di) {
    auto rec = niah_cell(d, method, L, di);
    rec.update(where);
    records.write(rec);
    p.hits += std::llround(rec["rank_accuracy"].get<double>() * opt.trials);
    exact_hits += std::llround(rec.value("exact_accuracy", 0.0) * opt.trials);
    p.n += opt.trials;
    char detail[96];
    std::snprintf(detail, sizeof detail, "%s L=%lld: rank acc %.2f", method.label().c_str(), (long long)L,
                  rec["rank_accuracy"].get<double>());
    progress.update(++done, detail);
  }
  records.write(pooled_record(method, p, exact_hits, opt));
  if (opt.ppl_windows > 0) {
    auto rec = perplexity_record(d, method, L);
    rec.update(where);
    records.write(rec);
  }
  return p;
}

}  // namespace

std::vector<nlohmann::json> eval_niah(const std::string& ckpt_path, const NiahOptions& opt) {
  auto opened = open_model(ckpt_path, opt.open);
  const auto& cfg = opened.model->cfg;
  auto plan = plan_niah(opt, cfg);
  const auto gamma = measured_gamma(plan, opt, opened);
  const auto data = opened.data();
  if (data.tokenizer_path.empty()) throw Error(data.dir + ": NIAH needs the run's tokenizer, and there is none");
  const auto tok = data::Tokenizer::load(data.tokenizer_path);
  const data::PasskeyBuilder builder(tok);
  const data::TokenStream val(data.val_shards);
  NiahData d{opened.model, opt, tok, builder, val};
  check_lengths(d, plan);

  auto shared = opened.provenance();
  shared.update({{"seed", opt.seed},
                 {"gamma_target", opt.gamma_target}});
  shared["ropelab"]["options"] = config::to_json(opt, niah_fields());
  if (opened.state.contains("config") && opened.state["config"].contains("seed"))
    shared["train_seed"] = opened.state["config"]["seed"];
  if (!gamma.is_null()) shared["gamma_measured"] = gamma;
  RecordWriter records(opt.out, shared);
  torch::NoGradGuard no_grad;
  Progress progress("niah", int64_t(plan.methods.size() * plan.lengths.size() * opt.depths.size()));
  int64_t done = 0;
  std::vector<AlphaPoint> points;
  for (const auto& method : plan.methods)
    for (int64_t L : plan.lengths) points.push_back(measure_at_length(d, method, L, records, progress, done));
  const RopeShape rope{cfg.rope_theta, static_cast<int>(cfg.rotary_dim()), cfg.T_train};
  for (const auto& a : find_alpha_star(points)) {
    auto rec = alpha_star_record(a);
    add_other_forms(rec, rope);
    records.write(rec);
  }
  for (auto& rec : reach_records(points, rope)) records.write(std::move(rec));
  progress.finish(std::to_string(records.records().size()) + " records");
  return records.take();
}

std::string niah_table(const std::vector<nlohmann::json>& records) {
  // method -> length -> (sum rank acc, sum exact acc, cells, ppl)
  std::map<std::string, std::map<int64_t, std::array<double, 4>>> t;
  for (const auto& r : records) {
    if (r["kind"] != "niah" && r["kind"] != "perplexity") continue;
    auto& c = t[r["method"].get<std::string>()][r["length"].get<int64_t>()];
    if (r["kind"] == "niah") {
      c[0] += r["rank_accuracy"].get<double>();
      c[1] += r.value("exact_accuracy", 0.0);
      c[2] += 1;
    } else {
      c[3] = r["perplexity"].get<double>();
    }
  }
  std::ostringstream out;
  char line[160];
  std::snprintf(line, sizeof line, "%-24s %8s %10s %10s %10s\n", "method", "length", "rank acc", "exact acc", "ppl");
  out << line;
  for (const auto& [method, by_len] : t)
    for (const auto& [L, c] : by_len) {
      std::snprintf(line, sizeof line, "%-24s %8lld %10.3f %10.3f %10.2f\n", method.c_str(), (long long)L,
                    c[2] > 0 ? c[0] / c[2] : NAN, c[2] > 0 ? c[1] / c[2] : NAN, c[3]);
      out << line;
    }
  out << "chance: rank accuracy 0.100 (true key vs 9 wrong keys); accuracies are means over depths\n";
  const std::string alpha = alpha_star_table(records);
  if (!alpha.empty()) out << "\n" << alpha;
  return out.str();
}

}  // namespace ropelab::eval
