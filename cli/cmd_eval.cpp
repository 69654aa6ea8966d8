#include <CLI/CLI.hpp>

#include <iostream>
#include <set>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "common/error.h"
#include "data/prepare.h"
#include "eval/gamma_eval.h"
#include "theory/gamma_record.h"
#include "eval/kv_eval.h"
#include "eval/niah.h"
#include "train/checkpoint.h"

namespace ropelab::cli {
namespace {

// "random", or "text:DIR" (a prepared data directory: its validation shards)
// or "text:A.bin,B.bin" (shards).
void parse_corpus(const std::string& spec, eval::GammaProtocol& p) {
  if (spec == "random") { p.corpus = "random"; return; }
  if (spec.rfind("text:", 0) != 0 || spec.size() == 5)
    throw Error("--corpus must be random, text:PREPARED_DIR or text:SHARD[,SHARD...], got \"" + spec + "\"");
  p.corpus = "text";
  const std::string rest = spec.substr(5);
  if (rest.find(".bin") == std::string::npos) {
    p.text_shards = data::load_prepared(rest).val_shards;
    return;
  }
  size_t start = 0;
  while (start <= rest.size()) {
    const size_t comma = rest.find(',', start);
    p.text_shards.push_back(rest.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

// The γ-field of one record: γ (R²) per layer, and per head when measured.
void print_gamma_field(const nlohmann::json& rec) {
  const auto& r = rec["ropelab"];
  if (!r.contains("per_layer")) return;
  auto cell = [](const nlohmann::json& f) {
    char buf[48];
    if (f["gamma"].is_null()) return std::string("     -       ");
    std::snprintf(buf, sizeof buf, "%7.3f (%.2f)", f["gamma"].get<double>(), f["R2"].get<double>());
    return std::string(buf);
  };
  std::cout << "γ-field of " << rec["model_id"].get<std::string>() << "@" << rec["step"] << ": γ (R²)\n";
  for (size_t l = 0; l < r["per_layer"].size(); ++l) {
    std::cout << "  layer " << l << ": " << cell(r["per_layer"][l]);
    if (r.contains("per_head"))
      for (const auto& h : r["per_head"][l]) std::cout << " | " << cell(h);
    std::cout << "\n";
  }
}

void add_niah_command(CLI::App& ev) {
  auto* n = ev.add_subcommand("niah", "needle-in-a-haystack retrieval and perplexity vs length, per RoPE scaling method");
  auto opt = std::make_shared<eval::NiahOptions>();
  auto ckpt = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  const auto model = add_model_flags(*n, *ckpt, opt->open);
  n->add_option("--lengths", opt->lengths, "context lengths: tokens or multiples of T_train (4x)")
      ->delimiter(',')->capture_default_str();
  n->add_option("--depths", opt->depths, "needle depths in [0,1]")->delimiter(',')->capture_default_str();
  n->add_option("--trials", opt->trials, "trials per (method, length, depth)")->capture_default_str();
  n->add_option("--scaling", opt->scaling,
                "KIND[:FACTOR][:KEY=VALUE...], KIND a method of `ropelab rope list` (none, pi:S, ntk:A|alpha_opt|alpha_opt_measured, "
                "ntk-aware:A, dynamic[:S], yarn:S, llama3:S, proportional, logn, ...); "
                "sweeps KIND-sweep:LO..HI:xR, e.g. ntk-sweep:0.25..64:x2")
      ->capture_default_str();
  n->add_option("--keys", opt->n_keys, "needles per prompt (>1: multi-key, one asked)")->capture_default_str();
  n->add_option("--gamma-target", opt->gamma_target, "γ target of α_opt")->capture_default_str();
  n->add_option("--gamma-from", opt->gamma_from, "γ results .jsonl holding this checkpoint's record (alpha_opt_measured)");
  n->add_option("--gamma-protocol", opt->gamma_protocol, "which γ record of --gamma-from: taf or fixed")
      ->capture_default_str();
  n->add_option("--seed", opt->seed)->capture_default_str();
  n->add_option("--ppl-windows", opt->ppl_windows, "held-out windows for perplexity (0 = skip)")->capture_default_str();
  n->add_flag("!--no-generation", opt->generation, "skip greedy exact-match scoring");
  n->add_flag("--json", *json, "print the records as JSON lines instead of a table");
  n->add_option("--out", opt->out, "results .jsonl to append to");
  n->callback([=] {
    model.require_one();
    const auto recs = eval::eval_niah(*ckpt, *opt);
    if (*json) for (const auto& r : recs) std::cout << r.dump() << "\n";
    else std::cout << eval::niah_table(recs);
  });
}

void add_kv_command(CLI::App& ev) {
  auto* k = ev.add_subcommand("kv", "KV-cache compression quality per policy and budget, against the closed-form D_f");
  auto opt = std::make_shared<eval::KVEvalOptions>();
  auto ckpt = std::make_shared<std::string>();
  auto gamma = std::make_shared<double>(0);
  auto json = std::make_shared<bool>(false);
  const auto model = add_model_flags(*k, *ckpt, opt->open);
  k->add_option("--policies", opt->policies, "comma list of KV policies")->capture_default_str();
  auto* ratios = k->add_option("--ratios", opt->ratios, "budgets as a fraction of the context")->delimiter(',')->capture_default_str();
  k->add_option("--budgets", opt->budgets, "budgets as token counts (instead of --ratios)")->delimiter(',')->excludes(ratios);
  k->add_option("--context", opt->context, "prefilled tokens N (0 = T_train - decode)")->capture_default_str();
  k->add_option("--decode", opt->decode, "tokens decoded after compression")->capture_default_str();
  k->add_option("--windows", opt->windows, "held-out windows")->capture_default_str();
  k->add_option("--sinks", opt->sinks, "sink tokens kept by streaming and df")->capture_default_str();
  k->add_option("--obs-window", opt->obs_window, "observation window of snapkv, pyramidkv, tova")->capture_default_str();
  k->add_option("--epsilon", opt->epsilon, "loss tolerance for the smallest budget")->capture_default_str();
  auto* g = k->add_option("--gamma", *gamma, "γ for D_f (default: --gamma-from, else γ_Padé(θ, N))");
  k->add_option("--gamma-from", opt->gamma_from, "γ results .jsonl holding this checkpoint's record")->excludes(g);
  k->add_option("--gamma-protocol", opt->gamma_protocol, "which γ record of --gamma-from: taf or fixed")
      ->capture_default_str();
  k->add_option("--f", opt->mass_fractions, "attention-mass fractions for D_f")->delimiter(',')->capture_default_str();
  k->add_option("--seed", opt->seed)->capture_default_str();
  k->add_option("--eviction", opt->eviction, "step: TOVA, H2O and the windows evict at every decoded token; prefill: once")
      ->capture_default_str();
  k->add_option("--niah-trials", opt->niah_trials, "passkey prompts of length N scored per policy and budget (0 = skip)")
      ->capture_default_str();
  k->add_option("--gmm-max-k", opt->gmm_max_k, "query-distribution check: GMMs up to this K (0 = skip)")->capture_default_str();
  k->add_flag("--json", *json, "print the records as JSON lines instead of a table");
  k->add_option("--out", opt->out, "results .jsonl to append to");
  k->callback([=, gopt = g] {
    model.require_one();
    if (gopt->count() > 0) opt->gamma = *gamma;
    const auto recs = eval::eval_kv(*ckpt, *opt);
    if (*json) for (const auto& r : recs) std::cout << r.dump() << "\n";
    else std::cout << eval::kv_table(recs);
  });
}

}  // namespace

void add_eval_command(CLI::App& root) {
  auto* ev = root.add_subcommand("eval", "evaluate checkpoints");
  ev->require_subcommand(1);
  add_niah_command(*ev);
  add_kv_command(*ev);
  auto* g = ev->add_subcommand("gamma", "measure the attention-decay exponent γ (A(d) ∝ d^-γ)");
  auto opt = std::make_shared<eval::GammaEvalOptions>();
  auto ckpt = std::make_shared<std::string>();
  auto run = std::make_shared<std::string>();
  auto corpus = std::make_shared<std::string>("random");
  auto T_eval = std::make_shared<double>(0);
  auto json = std::make_shared<bool>(false);
  auto& p = opt->protocol;
  auto hf_run = std::make_shared<std::string>();
  auto protocols = std::make_shared<std::vector<std::string>>(std::vector<std::string>{"taf"});
  const auto model = add_model_flags(*g, *ckpt, opt->open, /*data=*/false);
  auto* rn = g->add_option("--run", *run, "every checkpoint of a run directory (γ-flow; resumes)");
  auto* hr = g->add_option("--hf-run", *hf_run, "every step folder of a HF checkpoint folder (e.g. step1000/; γ-flow; resumes)")
                 ->check(CLI::ExistingDirectory);
  for (auto* o : {model.ckpt, model.hf, rn}) o->excludes(hr);
  model.ckpt->excludes(rn);
  model.hf->excludes(rn);
  auto* proto = g->add_option("--protocol", *protocols,
                               "taf (prompts d + tail, the public protocol) and/or fixed (one prompt length): "
                               "one record per protocol")
                    ->delimiter(',')->capture_default_str();
  g->add_option("--corpus", *corpus, "random | text:PREPARED_DIR | text:SHARD,...")->capture_default_str();
  g->add_option("--distances", p.distances, "key distances d (default: --grid-points log-spaced from --fit-min-d to "
                                            "the largest whose prompt fits the context)")->delimiter(',');
  g->add_option("--grid-points", p.grid_points, "size of the default distance grid")->capture_default_str();
  g->add_option("--prompts", p.prompts, "prompts per distance and seed")->capture_default_str();
  g->add_option("--seeds", p.seeds, "prompt seeds")->delimiter(',')->capture_default_str();
  auto* tail = g->add_option("--tail", p.tail, "taf: tokens after the key (prompt length d + tail)")->capture_default_str();
  auto* plen = g->add_option("--prompt-length", p.prompt_length, "fixed: the prompt length (0 = the context)")
                   ->capture_default_str();
  g->add_option("--context", p.context, "the longest prompt (0 = the model's T_train); longer prompts are skipped")
      ->capture_default_str();
  g->add_option("--batch", p.batch, "prompts per forward pass")->capture_default_str();
  g->add_option("--fit-min-d", opt->fit.fit_min_d, "fit only d >= this")->capture_default_str();
  g->add_option("--min-points", opt->fit.min_points, "fewer fitted distances is recorded as insufficient, not a γ")
      ->capture_default_str();
  g->add_option("--bootstrap", opt->fit.bootstrap_resamples, "bootstrap resamples for the CI95")->capture_default_str();
  g->add_option("--T-eval", *T_eval, "T for γ_Padé (default: the largest fitted distance)");
  g->add_flag("--per-layer", opt->per_layer, "γ per layer");
  g->add_flag("--per-head", p.per_head, "γ per (layer, head): the γ-field");
  g->add_flag("--json", *json, "print the records as JSON lines instead of a table");
  g->add_option("--out", opt->out, "results .jsonl to append to");
  g->callback([=] {
    if (int(!ckpt->empty()) + int(!run->empty()) + int(!hf_run->empty()) != 1)
      throw Error("give exactly one of --ckpt, --hf, --run or --hf-run");
    parse_corpus(*corpus, opt->protocol);
    if (*T_eval < 0) throw Error("--T-eval must be > 0");
    if (*T_eval > 0) opt->T_eval = *T_eval;
    // --prompt-length alone asks for the fixed protocol; beside taf it contradicts it, as --tail does fixed.
    if (plen->count() > 0 && proto->count() == 0) *protocols = {"fixed"};
    for (const auto& name : *protocols) {
      if (name != "taf" && name != "fixed") throw Error("--protocol must be taf, fixed or taf,fixed, got \"" + name + "\"");
      if (name == "taf" && plen->count() > 0)
        throw Error("--prompt-length contradicts --protocol taf (prompts of d + tail tokens); it is the fixed protocol's");
      if (name == "fixed" && tail->count() > 0)
        throw Error("--tail contradicts --protocol fixed (one prompt length for every d); it is the taf protocol's");
    }
    if (std::set<std::string>(protocols->begin(), protocols->end()).size() != protocols->size())
      throw Error("--protocol lists a protocol twice");
    std::vector<nlohmann::json> recs;
    for (const auto& name : *protocols) {
      auto o = *opt;
      o.protocol.name = name;
      eval::check_protocol(o.protocol);
      std::vector<nlohmann::json> these;
      if (!ckpt->empty()) these.push_back(eval::eval_gamma_checkpoint(*ckpt, o));
      else if (!run->empty()) these = eval::eval_gamma_run(*run, o);
      else these = eval::eval_gamma_hf_run(*hf_run, o);
      recs.insert(recs.end(), these.begin(), these.end());
    }
    if (*json) for (const auto& r : recs) std::cout << r.dump() << "\n";
    else {
      std::cout << gamma_table(recs);
      for (const auto& r : recs) print_gamma_field(r);
    }
  });
}

}  // namespace ropelab::cli
