#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "cli/config_flags.h"
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

// What every evaluation prints and writes: --json (records instead of a
// table) and --out (the .jsonl the records are appended to).
void add_output_flags(CLI::App& cmd, std::string& out, bool& json) {
  cmd.add_flag("--json", json, "print the records as JSON lines instead of a table");
  cmd.add_option("--out", out, "results .jsonl to append to");
}

void add_niah_command(CLI::App& ev) {
  auto* n = ev.add_subcommand("niah", "needle-in-a-haystack retrieval and perplexity vs length, per RoPE scaling method");
  auto opt = std::make_shared<eval::NiahOptions>();
  auto ckpt = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  const auto model = add_model_flags(*n, *ckpt, opt->open);
  std::map<std::string, CLI::Option_group*> groups;
  add_config_flags(*n, *opt, eval::niah_fields(), groups);
  add_output_flags(*n, opt->out, *json);
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
  std::map<std::string, CLI::Option_group*> groups;
  add_config_flags(*k, *opt, eval::kv_fields(), groups);
  k->get_option("--budgets")->excludes(k->get_option("--ratios"));
  auto* g = groups["kv"]->add_option("--gamma", *gamma, "γ for D_f (default: --gamma-from, else γ_Padé(θ, N))");
  g->excludes(k->get_option("--gamma-from"));
  add_output_flags(*k, opt->out, *json);
  k->callback([=] {
    model.require_one();
    if (g->count() > 0) opt->gamma = *gamma;
    const auto recs = eval::eval_kv(*ckpt, *opt);
    if (*json) for (const auto& r : recs) std::cout << r.dump() << "\n";
    else std::cout << eval::kv_table(recs);
  });
}

// --protocol taf,fixed: one measurement, and record, per protocol; each
// contradicts the other's own flag (--tail is taf's, --prompt-length fixed's).
std::vector<std::string> chosen_protocols(const CLI::App& g, std::vector<std::string> protocols) {
  const bool plen = g.get_option("--prompt-length")->count() > 0, tail = g.get_option("--tail")->count() > 0;
  // --prompt-length alone asks for the fixed protocol.
  if (plen && g.get_option("--protocol")->count() == 0) protocols = {"fixed"};
  for (const auto& name : protocols) {
    if (name != "taf" && name != "fixed") throw Error("--protocol must be taf, fixed or taf,fixed, got \"" + name + "\"");
    if (name == "taf" && plen)
      throw Error("--prompt-length contradicts --protocol taf (prompts of d + tail tokens); it is the fixed protocol's");
    if (name == "fixed" && tail)
      throw Error("--tail contradicts --protocol fixed (one prompt length for every d); it is the taf protocol's");
  }
  if (std::set<std::string>(protocols.begin(), protocols.end()).size() != protocols.size())
    throw Error("--protocol lists a protocol twice");
  return protocols;
}

void add_gamma_command(CLI::App& ev) {
  auto* g = ev.add_subcommand("gamma", "measure the attention-decay exponent γ (A(d) ∝ d^-γ)");
  auto opt = std::make_shared<eval::GammaEvalOptions>();
  auto ckpt = std::make_shared<std::string>();
  auto run = std::make_shared<std::string>();
  auto hf_run = std::make_shared<std::string>();
  auto corpus = std::make_shared<std::string>("random");
  auto json = std::make_shared<bool>(false);
  auto protocols = std::make_shared<std::vector<std::string>>(std::vector<std::string>{"taf"});
  const auto model = add_model_flags(*g, *ckpt, opt->open, /*data=*/false);
  auto* rn = g->add_option("--run", *run, "every checkpoint of a run directory (γ-flow; resumes)");
  auto* hr = g->add_option("--hf-run", *hf_run, "every step folder of a HF checkpoint folder (e.g. step1000/; γ-flow; resumes)")
                 ->check(CLI::ExistingDirectory);
  for (auto* o : {model.ckpt, model.hf, rn}) o->excludes(hr);
  model.ckpt->excludes(rn);
  model.hf->excludes(rn);
  std::map<std::string, CLI::Option_group*> groups;
  add_config_flags(*g, opt->protocol, eval::protocol_fields(), groups);
  add_config_flags(*g, opt->fit, fit::fit_fields(), groups);
  add_config_flags(*g, *opt, eval::gamma_eval_fields(), groups);
  groups["protocol"]->add_option("--protocol", *protocols,
                                 "taf (prompts d + tail, the public protocol) and/or fixed (one prompt length): "
                                 "one record per protocol")
      ->delimiter(',')->capture_default_str();
  groups["protocol"]->add_option("--corpus", *corpus, "random | text:PREPARED_DIR | text:SHARD,...")->capture_default_str();
  add_output_flags(*g, opt->out, *json);
  g->callback([=] {
    if (int(!ckpt->empty()) + int(!run->empty()) + int(!hf_run->empty()) != 1)
      throw Error("give exactly one of --ckpt, --hf, --run or --hf-run");
    parse_corpus(*corpus, opt->protocol);
    std::vector<nlohmann::json> recs;
    for (const auto& name : chosen_protocols(*g, *protocols)) {
      auto o = *opt;
      o.protocol.name = name;
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

}  // namespace

void add_eval_command(CLI::App& root) {
  auto* ev = root.add_subcommand("eval", "evaluate checkpoints");
  ev->require_subcommand(1);
  add_niah_command(*ev);
  add_kv_command(*ev);
  add_gamma_command(*ev);
}

}  // namespace ropelab::cli
