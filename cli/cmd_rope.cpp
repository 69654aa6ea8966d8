// `ropelab rope list`: the table of RoPE methods (model/rope_methods.h).
// `ropelab rope freqs --type T --theta θ --head-dim D [...]`: one method's
// inverse frequencies and attention factor as JSON, to check a configuration
// by eye or against another implementation.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <set>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/range_check.h"
#include "common/error.h"
#include "common/text.h"
#include "model/rope_methods.h"

namespace ropelab::cli {
namespace {

void print_table() {
  std::ostringstream out;
  for (const auto& m : model::rope_methods()) {
    out << m.name;
    for (const char* a : m.aliases) out << " (alias " << a << ")";
    out << "\n  transformers rope_type: " << (*m.hf_type ? m.hf_type : "none (ropelab's own)")
        << "\n  closed form (α_opt): " << (m.closed_form ? "yes" : "no")
        << "\n  depends on the sequence length: " << (m.length_dependent ? "yes" : "no") << "\n  " << m.summary << "\n";
    if (m.params.empty()) out << "  parameters: none\n";
    for (const auto& p : m.params)
      out << "  " << p.name << ": "
          << (std::string(p.name) == "factor"
                  ? std::string(m.factor_any_positive ? "a number > 0" : "a number >= 1") +
                        (m.factor_required ? " (required)" : " (default 1)")
                  : p.domain)
          << "\n";
  }
  std::cout << out.str();
}

// The --KEY flags of `rope freqs`, one per parameter of the table.
struct FreqsFlags {
  std::string type = "default";
  double theta = 10000.0;
  int64_t head_dim = 64;
  double rotary_fraction = 1.0;
  int64_t context = 0;
  int64_t length = 0;
  std::map<std::string, std::string> params;  // HF name -> value as written
};

nlohmann::json freqs(const FreqsFlags& f) {
  model::RopeParams p;
  p.type = model::rope_method(f.type).name;
  const model::RopeGeometry g{f.theta, f.head_dim, f.rotary_fraction, f.context};
  for (const auto& [key, v] : f.params) set_rope_param(p, key, model::rope_param_from_text(key, v, ','), "rope freqs --" + key);
  if (p.type == "longrope" && !f.params.count("factor") && f.context > 0)
    p.factor = double(f.context) / double(p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : f.context);
  check_rope_params(p, g, "rope freqs");
  const auto r = model::rope_frequencies(p, g, f.length);
  nlohmann::json j = {{"type", p.type}, {"theta", f.theta}, {"head_dim", f.head_dim}, {"rotary_fraction", f.rotary_fraction},
                      {"rotary_dim", model::rotary_dims(p, g)}, {"context", f.context}, {"length", f.length},
                      {"parameters", model::rope_params_json(p)}, {"inv_freq", r.inv_freq},
                      {"attention_factor", r.attention_factor}};
  if (r.logn_length > 0) j["logn_length"] = r.logn_length;
  return j;
}

}  // namespace

void add_rope_command(CLI::App& root) {
  auto* rope = root.add_subcommand("rope", "the RoPE methods ropelab trains and evaluates with (one table)");
  rope->require_subcommand(1);
  rope->add_subcommand("list", "every RoPE method: name, transformers' rope_type, parameters and domains, closed form")
      ->callback(print_table);

  auto* fr = rope->add_subcommand("freqs", "a method's inverse frequencies and attention factor as JSON");
  auto f = std::make_shared<FreqsFlags>();
  fr->add_option("--type", f->type, "a method of `ropelab rope list` (or an alias)")->capture_default_str();
  fr->add_option("--theta", f->theta, "base θ")->check(CLI::PositiveNumber)->capture_default_str();
  fr->add_option("--head-dim", f->head_dim, "head dimension")->check(in_range(2, 1 << 20))->capture_default_str();
  fr->add_option("--rotary-fraction", f->rotary_fraction, "share of each head that rotates (proportional: p)")
      ->check(in_range(1e-9, 1))->capture_default_str();
  fr->add_option("--context", f->context, "the model's context, max_position_embeddings (dynamic, logn; "
                                          "the default original context of yarn, llama3, longrope)");
  fr->add_option("--length", f->length, "the sequence length of the forward (dynamic, longrope)")->capture_default_str();
  // One flag per parameter any method takes (Hugging Face's name, dashes for underscores).
  std::set<std::string> seen;
  for (const auto& m : model::rope_methods())
    for (const auto& p : m.params) {
      if (!seen.insert(p.name).second) continue;
      std::string flag = p.name;
      std::replace(flag.begin(), flag.end(), '_', '-');
      const std::string key = p.name;
      fr->add_option_function<std::string>("--" + flag, [f, key](const std::string& v) { f->params[key] = v; },
                                            std::string(p.domain) + (key == "long_factor" || key == "short_factor"
                                                                          ? " (comma list)" : ""));
    }
  fr->callback([f] { std::cout << freqs(*f).dump(2) << "\n"; });
}

}  // namespace ropelab::cli
