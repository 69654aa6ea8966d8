// `ropelab eval gamma` as a library call: measure one checkpoint, or every
// checkpoint of a run (γ-flow), and write TAF-schema records to JSON Lines.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "theory/fit.h"
#include "eval/evaluation.h"
#include "eval/gamma_measure.h"

namespace ropelab::eval {

struct GammaEvalOptions {
  GammaProtocol protocol;
  fit::FitOptions fit;
  double T_eval = 0;             // T of γ_Padé; 0: the largest fitted distance
  bool per_layer = false;
  std::string out;               // results .jsonl (appended)
  OpenOptions open;              // a Hugging Face directory's model id and dtype
};
// The options of GammaEvalOptions itself, once (common/config_fields.h); the
// protocol's are protocol_fields(), the fit's fit::fit_fields().
const std::vector<config::Field<GammaEvalOptions>>& gamma_eval_fields();
// Every option of a γ measurement as JSON (the three tables): ropelab.options of its record.
nlohmann::json gamma_options_json(const GammaEvalOptions& opt);
// Checks every option (the three tables' rules, then the protocol's combinations).
void check_gamma_options(const GammaEvalOptions& opt);

// Measures one checkpoint file or Hugging Face directory and returns its
// record (also appended to out).
nlohmann::json eval_gamma_checkpoint(const std::string& ckpt_path, const GammaEvalOptions& opt);

// Measures every checkpoint in RUN_DIR's manifest not already in `out`
// (an interrupted sweep resumes), with a progress line; returns all records
// of this run in `out`, sorted by step.
std::vector<nlohmann::json> eval_gamma_run(const std::string& run_dir, const GammaEvalOptions& opt);

// The same over a folder of Hugging Face checkpoints (one sub-folder per
// step, e.g. Pythia's revisions step0/ .. step143000/), ordered by the step in
// each name; resumable from `out` in the same way.
std::vector<nlohmann::json> eval_gamma_hf_run(const std::string& dir, const GammaEvalOptions& opt);

}  // namespace ropelab::eval
