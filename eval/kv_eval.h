// `ropelab eval kv`: quality under KV-cache compression against the
// closed-form window D_f. For each held-out window: prefill N tokens with the
// full cache, compress every layer's cache to a budget with a policy, then
// decode the next tokens teacher-forced and compare their loss with the
// uncompressed cache. With eviction "step", the policies defined per step
// (TOVA, H2O, and the windows: recent, streaming, df) also evict after every
// decoded token, holding the cache at its budget; the others compress once
// after prefill, as they are defined. Also: the attention mass the kept tokens
// carry for the first decoded query (for the D_f window, against f), passkey
// retrieval on compressed caches (the NIAH task at length N), and decode
// tokens/s per policy.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/evaluation.h"
#include "model/transformer.h"

namespace ropelab::config { template <class C> struct Field; }

namespace ropelab::eval {

struct KVEvalOptions {
  OpenOptions open;  // a Hugging Face directory's model id, dtype, data
  std::string policies = "full,recent,streaming,h2o,tova,snapkv,pyramidkv,keynorm,expected,df";
  std::vector<double> ratios{0.1, 0.25, 0.5, 0.75, 0.9};  // budget = ratio x N per layer (mean)
  std::vector<int64_t> budgets;  // token counts instead of ratios (then ratio = budget / N)
  int64_t context = 0;         // N prefilled tokens; 0 = T_train - decode
  int64_t decode = 32;         // tokens decoded after compression
  int64_t windows = 8;         // held-out windows
  int64_t sinks = 4;           // streaming and df keep these first tokens
  int64_t obs_window = 8;      // snapkv/pyramidkv/tova observation window (last prefill queries)
  double epsilon = 0.01;       // "within ε of the full cache" for the smallest-budget comparison
  std::optional<double> gamma; // γ for D_f; else from gamma_from, else γ_Padé(θ, N) (recorded as such)
  std::string gamma_from;      // a γ results .jsonl: the record of this checkpoint
  std::string gamma_protocol = "taf";  // which of its records: the γ protocol ("taf", "fixed"; "" = any)
  std::vector<double> mass_fractions{0.8, 0.9, 0.95};  // f for D_f
  uint64_t seed = 99;
  int gmm_max_k = 8;           // query-distribution check: GMMs with K = 1..this (0 = skip)
  std::string eviction = "step";  // "step": per-step policies evict at every decoded token; "prefill": once
  int64_t niah_trials = 10;    // passkey prompts of length N scored on each compressed cache (0 = skip)
  // Per-step eviction moves the newest token into the evicted slot (O(1));
  // false re-gathers the kept cache every step, the plain way (tests compare the two).
  bool evict_in_place = true;
  std::string out;
};

// Each option once (common/config_fields.h): the flags of `eval kv` (and so
// the [kv] recipe keys), the records' ropelab.options, and the rules that need
// no model. `gamma` is not among them: unset is not a number, and --gamma
// excludes --gamma-from (cli/cmd_eval.cpp adds it).
const std::vector<config::Field<KVEvalOptions>>& kv_fields();

// Checks every option before any work (ratios in (0,1], known policies,
// budgets above the sinks/observation window, context within T_train).
void check_kv_options(const KVEvalOptions& opt, int64_t T_train);

std::vector<nlohmann::json> eval_kv(const std::string& ckpt_path, const KVEvalOptions& opt);

// One measurement's core, exposed for tests: prefill `prefix`, compress each
// layer to `budget` with `policy`, decode `tail` teacher-forced (evicting per
// step when opt.eviction says so and the policy is a per-step one); returns
// the mean loss of predicting tail[1..].
double compressed_decode_loss(model::Transformer& m, const std::vector<int64_t>& prefix,
                              const std::vector<int64_t>& tail, const std::string& policy, int64_t budget,
                              const KVEvalOptions& opt);
std::string kv_table(const std::vector<nlohmann::json>& records);

}  // namespace ropelab::eval
