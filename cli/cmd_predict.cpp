// `ropelab predict`: every closed form of theory/closed_forms.h for the inputs
// given, as a table (name, value, formula) or one JSON object (--json).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "theory/closed_forms.h"

namespace ropelab::cli {
namespace {

// Display order and the formula shown next to each value.
const std::pair<const char*, const char*> kRows[] = {
    {"gamma_pade", "(2-z)/(2+z), z = T*sqrt2/theta"},
    {"gamma_linear", "1 - z"},
    {"gamma_lerch", "1/(1+z)"},
    {"gamma_exp", "e^(-z)"},
    {"theta_design", "T*sqrt2*(1+g)/(2(1-g)), g = --gamma else --gamma-target"},
    {"d_horizon", "theta*(1-g)*sqrt2/(1+g), g = --gamma else gamma_pade"},
    {"alpha_opt", "L*sqrt2*(1+g_t)/(2*theta*(1-g_t)), g_t = --gamma-target"},
    {"alpha_needs_finetuning", "alpha_opt > 8"},
    {"theta_ntk", "alpha_opt*theta"},
    {"theta_ntk_aware", "theta*alpha_opt^(d/(d-2)), d = --d-head"},
    {"D_f_discrete", "min D: sum_{d<=D} d^-g >= f*sum_{d<=N} d^-g, g = --gamma else gamma_pade"},
    {"D_f_continuum", "[(1-f) + f*N^(1-g)]^(1/(1-g)); N^f at g = 1"},
    {"gamma_random_pred", "gamma_pade - log10(P_M/14)/(2*pi)"},
    {"regime", "A: g < 0.95, B: g > 1.05, else boundary; g = --gamma else gamma_pade"},
    {"liu_critical_dim", "Liu: 2*ceil((d/2)*log_theta(T_train/2pi)), capped at d"},
    {"liu_T_extra", "Liu: 2pi*theta^(d_extra/d)"},
    {"liu_base_for_L", "Liu: (L/2pi)^(d/d_extra)"},
    {"liu_ntk_factor", "Liu: liu_base_for_L / theta"},
    {"men_least_base_for_L", "Men: least theta with sum_i cos(m*theta^(-2i/d)) >= 0 for all m <= L"},
    {"men_theta_holds_at_L", "Men: B(m) >= 0 for all m <= L at this theta"},
    {"men_first_violation", "Men: the first m with B(m) < 0"},
};

std::string show(const nlohmann::json& v) {
  if (v.is_null()) return "undefined";
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    return buf;
  }
  if (v.is_object() && v.contains("code"))
    return v["code"].get<std::string>() + ": " + v["description"].get<std::string>();
  return v.dump();
}

void print_table(const nlohmann::json& out) {
  struct Row { std::string key, value, formula; };
  std::vector<Row> rows;
  size_t wn = 0, wv = 0;
  for (const auto& [key, formula] : kRows) {
    if (!out.contains(key)) continue;
    rows.push_back({key, show(out[key]), formula});
    wn = std::max(wn, rows.back().key.size());
    if (rows.back().key != "regime") wv = std::max(wv, rows.back().value.size());
  }
  for (const auto& r : rows) {
    if (r.key == "regime") {  // its value is a sentence; the formula goes on the next line
      std::printf("%-*s  %s\n%-*s  %s\n", int(wn), r.key.c_str(), r.value.c_str(), int(wn), "",
                  r.formula.c_str());
    } else {
      std::printf("%-*s  %*s  %s\n", int(wn), r.key.c_str(), int(wv), r.value.c_str(), r.formula.c_str());
    }
  }
  if (out.contains("notes"))
    for (const auto& n : out["notes"]) std::printf("note: %s\n", n.get<std::string>().c_str());
}

struct PredictFlags {
  double theta = 0, T = 0, L = 0, gamma_target = closed_forms::kDefaultGammaTarget, gamma = 0, N = 0,
         f = closed_forms::kDefaultMassFraction, params_M = 0;
  int d_head = 0;
  double T_train = 0;
  bool json = false;
  CLI::Option *o_theta, *o_T, *o_L, *o_gt, *o_gamma, *o_N, *o_f, *o_P, *o_d, *o_Tt;
};

std::optional<double> given(CLI::Option* o, double v) {
  return o->count() ? std::optional<double>(v) : std::nullopt;
}

void run_predict(const PredictFlags& p) {
  closed_forms::PredictInputs in;
  in.theta = given(p.o_theta, p.theta);
  in.T = given(p.o_T, p.T);
  in.L = given(p.o_L, p.L);
  in.gamma_target = given(p.o_gt, p.gamma_target);
  in.gamma = given(p.o_gamma, p.gamma);
  in.N = given(p.o_N, p.N);
  in.f = given(p.o_f, p.f);
  in.params_M = given(p.o_P, p.params_M);
  in.d_head = given(p.o_d, p.d_head);
  in.T_train = given(p.o_Tt, p.T_train);
  const nlohmann::json out = closed_forms::predict(in);
  if (out.size() <= 1)  // only "inputs": nothing could be computed
    throw Error(
        "predict: nothing to compute from these flags; give --theta and --T (gamma_pade and "
        "variants), --T (theta_design), --theta and --L (alpha_opt), --gamma or --theta/--T "
        "plus --N (D_f), --theta, --d-head and --T-train (Liu), --d-head and --L (Men)");
  if (p.json) {
    std::cout << out.dump(2) << "\n";
  } else {
    print_table(out);
  }
}

}  // namespace

void add_predict_command(CLI::App& root) {
  auto p = std::make_shared<PredictFlags>();
  CLI::App* cmd = root.add_subcommand("predict", "Closed-form predictions (γ_Padé, θ_design, α_opt, D_f, ...)");
  p->o_theta = cmd->add_option("--theta", p->theta, "RoPE base θ");
  p->o_T = cmd->add_option("--T", p->T, "evaluation length T (tokens)");
  p->o_L = cmd->add_option("--L", p->L, "target context length L for α_opt");
  p->o_gt = cmd->add_option("--gamma-target", p->gamma_target, "target γ for α_opt and θ_design")
                ->capture_default_str();
  p->o_gamma = cmd->add_option("--gamma", p->gamma, "a measured γ (used instead of γ_Padé)");
  p->o_N = cmd->add_option("--N", p->N, "context size N for the KV window D_f");
  p->o_f = cmd->add_option("--f", p->f, "attention-mass fraction f for D_f")->capture_default_str();
  p->o_P = cmd->add_option("--params-M", p->params_M, "model size in millions of parameters");
  p->o_d = cmd->add_option("--d-head", p->d_head, "head dimension (NTK-aware θ, Liu, Men)");
  p->o_Tt = cmd->add_option("--T-train", p->T_train, "training length (Liu's critical dimension)");
  cmd->add_flag("--json", p->json, "print one JSON object instead of the table");
  cmd->callback([p]() { run_predict(*p); });
}

}  // namespace ropelab::cli
