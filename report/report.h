// `ropelab report`: one self-contained HTML page (it opens offline: Vega,
// Vega-Lite and Vega-Embed are inlined), SVG figures and a Markdown summary,
// built from ropelab's result files. Plain C++ (no torch).
//
// Inputs, each one of:
//   a run directory    RUN_DIR/config.json + metrics.jsonl [+ checkpoints/manifest.json];
//                      its other *.jsonl files are read as result files
//   a study directory  any other folder: its *.jsonl files and those of its
//                      immediate subfolders, each subfolder that is a run directory as a run
//   a .jsonl file      result records, one JSON object a line
// A γ record is any record with a number at measurement.gamma: those of
// `ropelab eval gamma` (with step and checkpoint) and of `ropelab fit gamma`
// (without) alike. Records of kind niah, niah_pooled, alpha_star, perplexity, kv, kv_summary
// and query_gmm (those of `ropelab eval niah|kv`) are kept for their charts and tables, and
// pilot_stage records (`ropelab pilot`'s stage log) for the stages table. Other records
// are counted by kind and listed in a note.
// A path that does not exist, cannot be read, or is none of the above throws
// ropelab::Error naming it.
//
// Output (each file written atomically):
//   DIR/report.html          the page: the tables (report/report_tables.h), notes, one container per chart
//   DIR/summary.md           the same tables and notes in Markdown
//   DIR/report-data.json     everything the page shows, as data (inputs, rows, chart specs)
//   DIR/between_trainings.jsonl  one record per group of trainings and quantity (mean, t-interval)
//   DIR/figures/NAME.vl.json each chart's Vega-Lite spec, data inlined
//   DIR/figures/NAME.svg     each chart as SVG, when node and Vega-Lite's vl2svg are there
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ropelab::report {

// One training run directory.
struct Run {
  std::string label;                    // its folder name (parent/name when two runs share one)
  std::string dir;                      // as found (the path given, or study/sub)
  nlohmann::json config;                // config.json
  std::vector<nlohmann::json> metrics;  // metrics.jsonl
  nlohmann::json manifest;              // checkpoints/manifest.json; null when absent
};

// One γ record and where it came from.
struct GammaRecord {
  nlohmann::json record;
  std::string file;             // the .jsonl it was read from
  int index = 0;                // its 1-based position among that file's records
  std::string series;           // its run's label (eval records) or its own name (fit records)
  std::optional<int64_t> step;  // top-level "step"; absent for `fit gamma` records
  std::string protocol;         // measurement.protocol; "taf" for eval records that predate it; "" unknown
};

// A NIAH, perplexity, KV or KV-summary record (`ropelab eval niah|perplexity|kv`).
struct ResultRecord {
  nlohmann::json record;
  std::string file;             // the .jsonl it was read from
  std::string model;            // its model_id, "?" when absent
  std::optional<int64_t> step;  // top-level "step"
};

// Records of a kind the report does not chart, counted per file.
struct UnknownKind {
  std::string kind;  // the record's "kind"/"type" field, else a description of its keys
  std::string file;
  int count = 0;
};

struct Inputs {
  std::vector<std::string> paths;         // as given
  std::vector<Run> runs;
  std::vector<std::string> result_files;  // the .jsonl files read as results
  std::vector<GammaRecord> gamma;         // in reading order
  std::vector<GammaRecord> gamma_insufficient;  // measurement.status "insufficient_points": no γ
  // By "kind", each with the numbers its chart needs (else counted as unknown):
  std::vector<ResultRecord> niah;        // length, depth, rank_accuracy
  std::vector<ResultRecord> perplexity;  // length, perplexity
  std::vector<ResultRecord> niah_pooled; // length, scaling_factor, rank_accuracy (one method's depths pooled)
  std::vector<ResultRecord> alpha_star;  // length, best_factor (eval/alpha_star.h)
  std::vector<ResultRecord> niah_reach;  // method, longest_retrieving_length (may be null) and the predictions
  std::vector<ResultRecord> kv;          // ratio, rel_loss_increase, policy
  std::vector<ResultRecord> kv_summary;  // policy; smallest_ratio_within_epsilon (null: none within ε)
  std::vector<ResultRecord> query_gmm;   // layer, kv_head, best_K, delta_BIC_vs_K1
  std::vector<ResultRecord> stages;      // pilot_stage: stage, seconds
  std::vector<UnknownKind> unknown;
  // Derived once the records are read: per group of trainings and quantity,
  // the mean and t-interval over trainings (report/between_trainings.h).
  std::vector<nlohmann::json> between_trainings;
};

Inputs collect_inputs(const std::vector<std::string>& paths);

// The γ records the summary, the γ-fit chart and the γ-vs-θ chart show: for each
// run and protocol, its newest checkpoint's record (largest step; the later
// record on a tie); and every `fit gamma` record (no step) on its own.
std::vector<GammaRecord> final_records(const Inputs& in);
// Whether the γ records measure under more than one protocol (then every
// chart names a series with its protocol).
bool several_protocols(const Inputs& in);
// g.series, with " (PROTOCOL)" when the inputs hold several protocols.
std::string series_name(const Inputs& in, const GammaRecord& g);

// One row of the summary table; absent values print as "-".
struct SummaryRow {
  std::string model;  // series label
  std::optional<int64_t> step;
  std::string protocol;  // "" when unknown
  std::optional<double> theta, T_eval, gamma, ci95_lo, ci95_hi, R2, gamma_pade, relative_error,
      uniform_baseline, gamma_intrinsic, intrinsic_lo, intrinsic_hi;
};
std::vector<SummaryRow> summary_rows(const Inputs& in);

struct Options {
  std::string out_dir;
  // Where vega, vega-lite and vega-embed are installed; "" → $ROPELAB_NODE_MODULES,
  // else <source dir>/.cache/node_modules (what scripts/report-deps installs).
  std::string node_modules;
  bool svg = true;  // write figures/*.svg when node and vl2svg are available
};

struct Written {
  std::vector<std::string> files;  // every file written, report.html last
  std::vector<std::string> notes;  // also shown in the page and summary.md
  int n_charts = 0;
};

// Reads the inputs and writes the report into opt.out_dir (created if missing).
// Throws Error before writing anything when an input is bad or a library bundle
// is missing (the message names the file and says to run scripts/setup).
Written write_report(const std::vector<std::string>& paths, const Options& opt);

// The default node_modules folder (see Options::node_modules).
std::string default_node_modules();

}  // namespace ropelab::report
