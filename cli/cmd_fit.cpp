// `ropelab fit gamma`: refit γ to an attention-decay curve measured elsewhere
// (TAF JSON, TAF CLI JSON or CSV) with the same fit and record as `eval gamma`.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/config_flags.h"
#include "common/error.h"
#include "common/io.h"
#include "theory/decay_input.h"
#include "theory/fit.h"
#include "theory/gamma_record.h"

namespace ropelab::cli {
namespace {

std::string num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

struct FitFlags {
  std::string input, model_id, out, protocol;
  double theta = 0, T_eval = 0;
  int64_t tail = 50, prompt_length = 0;
  fit::FitOptions fit;  // its flags from fit::fit_fields(), as `eval gamma`'s
  bool json = false;
  CLI::Option *o_theta = nullptr, *o_T_eval = nullptr, *o_tail = nullptr, *o_prompt_length = nullptr;
};

// The protocol the curve was measured under: --protocol, else taf for the
// public tool's files (its prompts are d + 50), else unknown (""). Known, it
// gives each distance its prompt length, and so the normalised γ.
std::string curve_protocol(const FitFlags& f, decay_input::DecayInput& in) {
  std::string protocol = f.protocol;
  if (protocol.empty() && in.format != "csv") protocol = "taf";
  if (!protocol.empty() && protocol != "taf" && protocol != "fixed")
    throw Error("fit gamma: --protocol must be taf or fixed, got \"" + protocol + "\"");
  if (protocol == "taf" && f.o_prompt_length->count())
    throw Error("fit gamma: --prompt-length contradicts --protocol taf (prompts of d + tail tokens)");
  if (protocol == "fixed" && f.o_tail->count())
    throw Error("fit gamma: --tail contradicts --protocol fixed (one prompt length for every d)");
  if (protocol == "fixed" && !f.o_prompt_length->count())
    throw Error("fit gamma: --protocol fixed needs --prompt-length (the one prompt length of the measurement)");
  if (protocol.empty() && (f.o_tail->count() || f.o_prompt_length->count()))
    throw Error("fit gamma: --tail and --prompt-length need --protocol taf or fixed");
  for (double d : in.curve.distances) {
    if (protocol == "taf") in.curve.prompt_lengths.push_back(d + double(f.tail));
    if (protocol == "fixed") {
      if (double(f.prompt_length) <= d)
        throw Error("fit gamma: distance " + num(d) + " of " + f.input + " does not fit in --prompt-length " +
                    std::to_string(f.prompt_length));
      in.curve.prompt_lengths.push_back(double(f.prompt_length));
    }
  }
  return protocol;
}

void print_summary(const nlohmann::json& rec, const decay_input::DecayInput& in) {
  const auto& m = rec["measurement"];
  const auto& r = rec["ropelab"];
  std::cout << gamma_table(std::vector<nlohmann::json>{rec});
  std::printf("source: %s (%s), %zu distances, fit d >= %g\n", in.path.c_str(), in.format.c_str(),
              in.curve.distances.size(), r["fit_min_d"].get<double>());
  std::printf("CI95: %s, %d resamples\n", r["ci_method"].get<std::string>().c_str(),
              r["n_resamples"].get<int>());
  const auto& lambda = r["exp_fit"]["lambda"];
  std::printf("exponential fit: lambda = %s, R2 = %.4f\n",
              lambda.is_null() ? "inf (no decay)" : num(lambda.get<double>()).c_str(),
              r["exp_fit"]["R2"].get<double>());
  if (!r["per_seed_gamma"].empty()) {
    std::printf("per-seed gamma:");
    for (const auto& g : r["per_seed_gamma"]) std::printf(" %.4f", g.get<double>());
    if (r["per_seed_sd"].is_number()) std::printf("  (sd %.4f)", r["per_seed_sd"].get<double>());
    std::printf("\n");
  }
  std::printf("T_eval = %g (%s)\n", m["T_eval"].get<double>(), m["T_eval_rule"].get<std::string>().c_str());
}

void run_fit_gamma(const FitFlags& f) {
  if (f.o_theta->count() && !(std::isfinite(f.theta) && f.theta > 0))
    throw Error("fit gamma: --theta must be > 0, got " + num(f.theta));
  if (f.o_T_eval->count() && !(std::isfinite(f.T_eval) && f.T_eval > 0))
    throw Error("fit gamma: --T-eval must be > 0, got " + num(f.T_eval));
  decay_input::DecayInput in = decay_input::read_decay_curve(f.input);
  const std::string protocol = curve_protocol(f, in);
  // --theta wins over the file's θ: the user may correct a file.
  const std::optional<double> theta = f.o_theta->count() ? std::optional<double>(f.theta) : in.theta;
  if (f.o_T_eval->count() && !theta)
    throw Error("fit gamma: --T-eval asks for gamma_pade at T = " + num(f.T_eval) +
                ", which needs --theta (" + f.input + " gives no \"theta\")");

  fit::GammaFit g;
  try {
    g = fit::fit_gamma(in.curve, f.fit);
  } catch (const Error& e) {
    throw Error(f.input + ": " + e.what());
  }

  nlohmann::json arch = nlohmann::json::object();
  arch["rope_theta"] = theta ? nlohmann::json(*theta) : nlohmann::json();
  MeasurementInfo info;
  info.model_id = !f.model_id.empty() ? f.model_id
                  : !in.model.empty() ? in.model
                                      : std::filesystem::path(f.input).stem().string();
  info.corpus = in.corpus;
  info.n_prompts_per_distance = in.n_prompts_per_distance;
  if (f.o_T_eval->count()) {
    info.T_eval = f.T_eval;
    info.T_eval_rule = "given (--T-eval)";
  }
  info.source = f.input + " (" + in.format + ")";
  info.protocol = protocol;
  if (!protocol.empty()) info.uniform_baseline_gamma = fit::uniform_baseline_gamma(in.curve, f.fit.fit_min_d);
  const nlohmann::json rec = make_gamma_record(arch, in.curve, g, info);

  if (!theta)
    std::cerr << "note: theta unknown (no --theta and none in " << f.input
              << "); gamma_pade and relative_error are null\n";
  if (f.json) {
    std::cout << rec.dump(2) << "\n";
  } else {
    print_summary(rec, in);
  }
  if (!f.out.empty()) {
    io::append_jsonl(f.out, rec);
    std::cerr << "appended the record to " << f.out << "\n";
  }
}

}  // namespace

void add_fit_command(CLI::App& root) {
  CLI::App* fit = root.add_subcommand("fit", "Fit attention-decay curves measured elsewhere");
  fit->require_subcommand(1);
  auto f = std::make_shared<FitFlags>();
  CLI::App* cmd = fit->add_subcommand("gamma", "Fit A(d) = a*d^-gamma with a bootstrap CI95");
  cmd->add_option("--input", f->input, "A(d) file: TAF result JSON, TAF CLI JSON, or CSV distance,A[,seed]")
      ->required();
  f->o_theta = cmd->add_option("--theta", f->theta, "RoPE base θ (overrides the file's)");
  f->o_T_eval = cmd->add_option("--T-eval", f->T_eval, "T for gamma_pade (default: largest fitted distance)");
  cmd->add_option("--model-id", f->model_id, "name for the record (default: the file's model, else its name)");
  std::map<std::string, CLI::Option_group*> groups;
  add_config_flags(*cmd, f->fit, fit::fit_fields(), groups);
  cmd->add_option("--protocol", f->protocol,
                  "how the curve was measured: taf (prompts d + tail; the default for the public tool's JSON) or "
                  "fixed (--prompt-length): gives the normalised γ");
  f->o_tail = cmd->add_option("--tail", f->tail, "taf: tokens after the key")->capture_default_str();
  f->o_prompt_length = cmd->add_option("--prompt-length", f->prompt_length, "fixed: the prompt length");
  cmd->add_flag("--json", f->json, "print the record as one JSON object");
  cmd->add_option("--out", f->out, "append the record as a JSON line to this file");
  cmd->callback([f]() { run_fit_gamma(*f); });
}

}  // namespace ropelab::cli
