#include "report/report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/error.h"
#include "common/io.h"
#include "common/run_dir.h"
#include "common/subprocess.h"
#include "report/between_trainings.h"
#include "report/report_charts.h"
#include "report/report_tables.h"

#ifndef ROPELAB_SOURCE_DIR
#define ROPELAB_SOURCE_DIR "."
#endif

namespace ropelab::report {
namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------- reading inputs
namespace {

// read_jsonl reads nothing from a file it cannot open; the report names it instead.
void check_readable(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw Error("report: cannot read " + path.string() + ": " + std::strerror(errno));
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw Error("report: cannot read directory " + dir.string() + ": " + ec.message());
  std::vector<fs::path> out;
  for (const auto& e : it) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string kind_of(const json& r) {
  if (!r.is_object()) return "not a JSON object";
  for (const char* key : {"kind", "type"})
    if (r.contains(key) && r[key].is_string()) return r[key].get<std::string>();
  if (r.contains("step") && r.contains("loss")) return "training metrics (give its run directory to chart them)";
  std::string keys;
  int n = 0;
  for (const auto& item : r.items()) {
    if (n++ == 4) { keys += ", …"; break; }
    keys += (keys.empty() ? "" : ", ") + item.key();
  }
  return "record with keys " + (keys.empty() ? "(none)" : keys);
}

bool in_run(const GammaRecord& g) { return g.step || g.record.contains("checkpoint"); }

std::string model_id(const json& r) {
  return r.contains("model_id") && r["model_id"].is_string() ? r["model_id"].get<std::string>() : "";
}

class Collector {
 public:
  Inputs in;

  void add_path(const std::string& path) {
    in.paths.push_back(path);
    const fs::path p(path);
    std::error_code ec;
    const auto st = fs::status(p, ec);
    if (!fs::exists(st)) throw Error("report: " + path + ": no such file or directory");
    if (fs::is_directory(st)) {
      if (rundir::is_run_dir(p)) return add_run(p);
      int found = add_results_in(p);
      for (const auto& sub : sorted_entries(p)) {
        if (!fs::is_directory(sub)) continue;
        if (rundir::is_run_dir(sub)) add_run(sub), ++found;
        else found += add_results_in(sub);
      }
      if (found == 0)
        throw Error("report: " + path + " is a directory with no run directory (config.json + metrics.jsonl) "
                    "and no .jsonl result file, in it or in its immediate subfolders");
      return;
    }
    if (fs::is_regular_file(st) && p.extension() == ".jsonl") return add_results(p);
    throw Error("report: " + path + " is not a run directory, a study directory or a .jsonl result file");
  }

  // Run labels are folder names (parent/name where two runs share one); γ
  // records of a run's checkpoints are labelled like the run.
  void finish() {
    std::map<std::string, int> name_count;
    for (const auto& r : in.runs) ++name_count[fs::path(r.dir).filename().string()];
    for (auto& r : in.runs) {
      const fs::path d(r.dir);
      r.label = name_count[d.filename().string()] > 1 ? (d.parent_path().filename() / d.filename()).string()
                                                       : d.filename().string();
    }
    std::map<std::string, std::string> key_label;  // run key of a checkpoint record → label
    std::set<std::string> labels;
    for (const auto& r : in.runs) labels.insert(r.label);
    for (auto* list : {&in.gamma, &in.gamma_insufficient}) {
      for (auto& g : *list) {
        if (!in_run(g)) continue;
        // A Hugging Face model's checkpoints (step folders) are one series, its model_id.
        const bool hf = g.record.contains("arch") && g.record["arch"].value("family", "") == "huggingface";
        if (hf || !g.record.contains("checkpoint") || !g.record["checkpoint"].is_string()) {
          g.series = model_id(g.record).empty() ? "?" : model_id(g.record);
          continue;
        }
        const fs::path run_dir = rundir::run_of_checkpoint(g.record["checkpoint"].get<std::string>());
        const std::string key = run_dir.lexically_normal().string();
        if (!key_label.count(key)) labels.insert(key_label[key] = label_for_run_key(run_dir, labels));
        g.series = key_label[key];
      }
    }
    // A `fit gamma` record is named by its model_id, unless that names something else too.
    std::map<std::string, int> fit_names;
    for (const auto& g : in.gamma)
      if (!in_run(g)) ++fit_names[model_id(g.record)];
    for (const auto& g : in.gamma) labels.insert(g.series);
    for (auto& g : in.gamma) {
      if (in_run(g)) continue;
      const std::string model = model_id(g.record);
      g.series = !model.empty() && fit_names[model] == 1 && !labels.count(model)
                     ? model
                     : (model.empty() ? std::string("?") : model) + " (" + fs::path(g.file).filename().string() +
                           ":" + std::to_string(g.index) + ")";
    }
  }

 private:
  std::set<std::string> seen_;  // canonical paths already read

  bool first_time(const fs::path& p) {
    std::error_code ec;
    const fs::path canon = fs::weakly_canonical(p, ec);
    return seen_.insert(ec ? p.lexically_normal().string() : canon.string()).second;
  }

  // The label of the run a checkpoint path points into: a given run directory's
  // when it is the same folder (from here) or the only one of that name.
  std::string label_for_run_key(const fs::path& run_dir, const std::set<std::string>& taken) {
    std::error_code ec;
    const auto canon = fs::weakly_canonical(run_dir, ec);
    const Run* by_name = nullptr;
    int n_by_name = 0;
    for (const auto& r : in.runs) {
      std::error_code ec2;
      if (!ec && fs::weakly_canonical(r.dir, ec2) == canon && !ec2) return r.label;
      if (fs::path(r.dir).filename() == run_dir.filename()) by_name = &r, ++n_by_name;
    }
    if (n_by_name == 1) return by_name->label;
    const std::string name = run_dir.filename().string();
    return name.empty() || taken.count(name) ? run_dir.string() : name;
  }

  void add_run(const fs::path& dir) {
    if (!first_time(dir)) return;
    Run run;
    run.dir = dir.string();
    check_readable(rundir::config_path(dir));
    run.config = io::read_json(rundir::config_path(dir));
    check_readable(rundir::metrics_path(dir));
    run.metrics = io::read_jsonl(rundir::metrics_path(dir));
    const fs::path manifest = rundir::manifest_path(dir);
    if (fs::exists(manifest)) {
      check_readable(manifest);
      run.manifest = io::read_json(manifest.string());
    }
    in.runs.push_back(std::move(run));
    for (const auto& f : sorted_entries(dir))
      if (f != fs::path(rundir::metrics_path(dir)) && f != fs::path(rundir::builds_path(dir)) && f.extension() == ".jsonl" &&
          fs::is_regular_file(f))
        add_results(f);
  }

  // The kinds kept for charts and tables, and the fields each needs (numbers, except policy and stage: strings).
  struct KeptKind {
    const char* kind;
    std::vector<const char*> fields;
    std::vector<ResultRecord> Inputs::*list;
  };
  static const std::vector<KeptKind>& kept_kinds() {
    static const std::vector<KeptKind> k = {
        {"niah", {"length", "depth", "rank_accuracy"}, &Inputs::niah},
        {"perplexity", {"length", "perplexity"}, &Inputs::perplexity},
        {"niah_pooled", {"length", "scaling_factor", "rank_accuracy"}, &Inputs::niah_pooled},
        {"alpha_star", {"length", "best_factor"}, &Inputs::alpha_star},
        {"niah_reach", {"method"}, &Inputs::niah_reach},
        {"kv", {"policy", "ratio", "rel_loss_increase"}, &Inputs::kv},
        {"kv_summary", {"policy"}, &Inputs::kv_summary},  // smallest_ratio_within_epsilon is null when none was
        {"query_gmm", {"layer", "kv_head", "best_K", "delta_BIC_vs_K1"}, &Inputs::query_gmm},
        {"pilot_stage", {"stage", "seconds"}, &Inputs::stages}};
    return k;
  }
  static bool has_field(const json& r, const char* f) {
    const std::string name = f;
    if (name == "policy" || name == "stage" || name == "method") return r.contains(f) && r[f].is_string();
    return number_at(r, {f}).has_value();
  }
  static const KeptKind* kind_entry(const json& r) {
    if (!r.is_object() || !r.contains("kind") || !r["kind"].is_string()) return nullptr;
    for (const auto& k : kept_kinds())
      if (r["kind"] == k.kind) return &k;
    return nullptr;
  }
  // Where a charted kind's record goes; nullptr for other kinds and for one that lacks a field.
  std::vector<ResultRecord>* kept_kind(const json& r) {
    const KeptKind* k = kind_entry(r);
    if (!k) return nullptr;
    for (const char* f : k->fields)
      if (!has_field(r, f)) return nullptr;
    return &(in.*(k->list));
  }
  // " (without F, …)" for a charted kind's record that lacks fields; "" otherwise.
  static std::string missing_fields(const json& r) {
    const KeptKind* k = kind_entry(r);
    std::string s;
    if (k)
      for (const char* f : k->fields)
        if (!has_field(r, f)) s += (s.empty() ? " (without " : ", ") + std::string(f);
    return s.empty() ? s : s + ")";
  }

  int add_results_in(const fs::path& dir) {
    int n = 0;
    for (const auto& f : sorted_entries(dir))
      if (f.extension() == ".jsonl" && fs::is_regular_file(f)) add_results(f), ++n;
    return n;
  }

  void add_results(const fs::path& file) {
    if (!first_time(file)) return;
    check_readable(file);
    const std::vector<json> records = io::read_jsonl(file.string());  // names file:line when corrupt
    if (records.empty() && fs::file_size(file) > 0)
      throw Error("report: " + file.string() + ": no JSON record in it (expected JSON Lines)");
    in.result_files.push_back(file.string());
    std::map<std::string, int> unknown;
    for (size_t i = 0; i < records.size(); ++i) {
      const json& r = records[i];
      const bool insufficient = r.is_object() && r.contains("measurement") && r["measurement"].is_object() &&
                                r["measurement"].value("status", "") == "insufficient_points";
      if (number_at(r, {"measurement", "gamma"}) || insufficient) {
        GammaRecord g{r, file.string(), static_cast<int>(i + 1), "", std::nullopt, ""};
        if (const auto step = number_at(r, {"step"})) g.step = static_cast<int64_t>(std::llround(*step));
        const json proto = r["measurement"].value("protocol", json());
        g.protocol = proto.is_string() ? proto.get<std::string>() : in_run(g) ? "taf" : "";
        (insufficient ? in.gamma_insufficient : in.gamma).push_back(std::move(g));
      } else if (auto* kept = kept_kind(r)) {
        kept->push_back({r, file.string(), model_id(r).empty() ? "?" : model_id(r), std::nullopt});
        if (const auto step = number_at(r, {"step"})) kept->back().step = static_cast<int64_t>(std::llround(*step));
      } else if (kind_of(r) != "between_trainings") {  // a previous report's own summary: derived, not an input
        ++unknown[kind_of(r) + missing_fields(r)];
      }
    }
    for (const auto& [kind, n] : unknown) in.unknown.push_back({kind, file.string(), n});
  }
};

}  // namespace

Inputs collect_inputs(const std::vector<std::string>& paths) {
  if (paths.empty()) throw Error("report: no input given (run directories, study directories or .jsonl files)");
  Collector c;
  try {
    for (const auto& p : paths) c.add_path(p);
  } catch (const fs::filesystem_error& e) {  // e.g. a folder it may not look into; names the path
    throw Error(std::string("report: ") + e.what());
  }
  c.finish();
  c.in.between_trainings = between_training_records(c.in);
  return c.in;
}

bool several_protocols(const Inputs& in) {
  std::set<std::string> seen;
  for (const auto& g : in.gamma)
    if (!g.protocol.empty()) seen.insert(g.protocol);
  return seen.size() > 1;
}

std::string series_name(const Inputs& in, const GammaRecord& g) {
  return several_protocols(in) && !g.protocol.empty() ? g.series + " (" + g.protocol + ")" : g.series;
}

std::vector<GammaRecord> final_records(const Inputs& in) {
  std::vector<GammaRecord> out;
  std::map<std::string, size_t> run_slot;  // series and protocol → index in out
  for (const auto& g : in.gamma) {
    if (!in_run(g)) {
      out.push_back(g);
      continue;
    }
    const std::string key = g.series + "\n" + g.protocol;
    auto it = run_slot.find(key);
    if (it == run_slot.end()) {
      run_slot[key] = out.size();
      out.push_back(g);
    } else if (g.step.value_or(INT64_MIN) >= out[it->second].step.value_or(INT64_MIN)) {
      out[it->second] = g;
    }
  }
  return out;
}

std::vector<SummaryRow> summary_rows(const Inputs& in) {
  std::vector<SummaryRow> rows;
  for (const auto& g : final_records(in)) {
    const json& r = g.record;
    auto uniform = number_at(r, {"measurement", "uniform_baseline_gamma"});
    if (!uniform) uniform = number_at(r, {"ropelab", "uniform_baseline_gamma"});  // records before protocols
    rows.push_back({g.series, g.step, g.protocol, number_at(r, {"arch", "rope_theta"}),
                    number_at(r, {"measurement", "T_eval"}), number_at(r, {"measurement", "gamma"}),
                    number_at(r, {"measurement", "gamma_ci95_lo"}), number_at(r, {"measurement", "gamma_ci95_hi"}),
                    number_at(r, {"measurement", "fit", "R2"}), number_at(r, {"predictions", "gamma_pade"}),
                    number_at(r, {"predictions", "relative_error"}), uniform,
                    number_at(r, {"measurement", "gamma_intrinsic"}),
                    number_at(r, {"measurement", "gamma_intrinsic_ci95_lo"}),
                    number_at(r, {"measurement", "gamma_intrinsic_ci95_hi"})});
  }
  return rows;
}

std::string default_node_modules() {
  if (const char* env = std::getenv("ROPELAB_NODE_MODULES"); env && *env) return env;
  return std::string(ROPELAB_SOURCE_DIR) + "/.cache/node_modules";
}

// ---------------------------------------------------------------- writing
namespace {

const char* kBundles[][2] = {{"vega", "vega/build/vega.min.js"},
                             {"vega-lite", "vega-lite/build/vega-lite.min.js"},
                             {"vega-embed", "vega-embed/build/vega-embed.min.js"}};

struct Library {
  std::string name, version, js;
};

std::vector<Library> read_libraries(const std::string& node_modules) {
  std::vector<Library> libs;
  for (const auto& [name, rel] : kBundles) {
    const std::string path = node_modules + "/" + rel;
    if (!fs::is_regular_file(path))
      throw Error("report: " + path + " is missing: run scripts/setup (it installs Vega, Vega-Lite and " +
                  "Vega-Embed into .cache/node_modules)");
    std::string version = "?";
    try {
      version = io::read_json(node_modules + "/" + name + "/package.json").at("version").get<std::string>();
    } catch (const std::exception&) {  // the version is only shown; the bundle is what counts
    }
    libs.push_back({name, version, io::read_file(path)});
  }
  return libs;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
  return s;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string md_escape(const std::string& s) { return replace_all(s, "|", "\\|"); }

// JSON inside <script>: '<', '>' and '&' as \u escapes, so no "</script>" or "<!--" can appear.
std::string script_json(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return replace_all(replace_all(replace_all(s, "<", "\\u003c"), ">", "\\u003e"), "&", "\\u0026");
}

std::string jsonl(const std::vector<json>& records) {
  std::string s;
  for (const auto& r : records) s += r.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return s;
}

std::vector<std::string> make_notes(const Inputs& in) {
  std::vector<std::string> notes;
  if (!in.gamma_insufficient.empty()) {
    std::map<std::string, int> per_series;
    for (const auto& g : in.gamma_insufficient) ++per_series[series_name(in, g)];
    std::string s = "γ records with too few fitted distances, so no γ (measurement.status insufficient_points):";
    for (const auto& [series, n] : per_series) s += " " + series + " " + std::to_string(n) + ";";
    s.back() = '.';
    notes.push_back(s);
  }
  if (!in.unknown.empty()) {
    std::string s = "Records of kinds the report does not chart (counted, not shown):";
    for (const auto& u : in.unknown) s += " " + std::to_string(u.count) + " × \"" + u.kind + "\" in " + u.file + ";";
    s.back() = '.';
    notes.push_back(s);
  }
  if (in.gamma.empty()) notes.push_back("No γ records (measurement.gamma) among the inputs.");
  std::set<std::string> measured;
  for (const auto& g : in.gamma) measured.insert(g.series);
  for (const auto& r : in.runs)
    if (!measured.count(r.label))
      notes.push_back("Run " + r.label + " has no γ records among the inputs (ropelab eval gamma --run " + r.dir +
                      " --out RESULTS.jsonl measures them).");
  for (const auto& g : final_records(in))
    if (!number_at(g.record, {"arch", "rope_theta"}))
      notes.push_back(g.series + " has no θ (arch.rope_theta): it has no γ_Padé and is not on the γ-vs-θ chart.");
  return notes;
}

std::string shell_quote(const std::string& s) { return "'" + replace_all(s, "'", "'\\''") + "'"; }

bool node_on_path() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = dirs.substr(start, end - start);
    if (!dir.empty() && ::access((dir + "/node").c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// Runs vl2svg on a spec file; the SVG text, or nothing with `error` set.
std::optional<std::string> render_svg(const std::string& vl2svg, const std::string& spec_path, std::string& error) {
  const std::string err_path = io::temp_name(spec_path) + ".err";
  const auto run = run_shell(shell_quote(vl2svg) + " " + shell_quote(spec_path) + " 2>" + shell_quote(err_path));
  const std::string& out = run.output;
  std::string err;
  try {
    err = io::read_file(err_path);
  } catch (const Error&) {
  }
  std::remove(err_path.c_str());
  if (run.exit_code == 0 && out.rfind("<svg", 0) == 0) return out;
  error = "vl2svg failed (status " + std::to_string(run.exit_code) + ")" +
          (err.empty() ? "" : ": " + err.substr(0, err.find('\n')));
  return std::nullopt;
}

std::string html_page(const Inputs& in, const std::vector<Table>& tables, const std::vector<Chart>& charts,
                      const std::vector<std::string>& notes, const std::vector<Library>& libs) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>ropelab report</title>\n"
      "<style>\nbody{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}\n"
      "table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em}\n"
      "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}th{background:#f3f3f3}\n"
      ".caption{color:#555;font-size:.9em;max-width:60em}.note{background:#fff8e1;padding:.4em .8em}\n"
      "footer{color:#777;font-size:.8em;margin-top:3em}\n</style>\n";
  for (const auto& lib : libs)
    h += "<script>/* " + lib.name + " " + lib.version + " */\n" + replace_all(lib.js, "</script", "<\\/script") +
         "\n</script>\n";
  h += "</head>\n<body>\n<h1>ropelab report</h1>\n<p>Inputs:";
  for (const auto& p : in.paths) h += " <code>" + html_escape(p) + "</code>";
  h += " — " + std::to_string(in.runs.size()) + " run(s), " + std::to_string(in.result_files.size()) +
       " result file(s), " + std::to_string(in.gamma.size()) + " γ record(s).</p>\n";
  for (const auto& t : tables) {
    if (t.rows.empty() && t.when_empty.empty()) continue;
    h += "<section>\n<h2>" + html_escape(t.title) + "</h2>\n<p class=\"caption\">" + html_escape(t.caption) + "</p>\n";
    if (t.rows.empty()) {
      h += "<p>" + html_escape(t.when_empty) + "</p>\n</section>\n";
      continue;
    }
    h += "<table id=\"" + t.id + "\">\n<tr>";
    for (const auto& c : t.columns) h += "<th>" + html_escape(c) + "</th>";
    h += "</tr>\n";
    for (const auto& row : t.rows) {
      h += "<tr>";
      for (size_t i = 0; i < row.size(); ++i)
        h += (t.numeric[i] ? "<td class=\"num\">" : "<td>") + html_escape(row[i]) + "</td>";
      h += "</tr>\n";
    }
    h += "</table>\n</section>\n";
  }
  if (!notes.empty()) {
    h += "<section id=\"notes\">\n<h2>Notes</h2>\n";
    for (const auto& n : notes) h += "<p class=\"note\">" + html_escape(n) + "</p>\n";
    h += "</section>\n";
  }
  json specs = json::array();
  for (const auto& c : charts) {
    h += "<section>\n<h2>" + html_escape(c.title) + "</h2>\n<p class=\"caption\">" + html_escape(c.caption) +
         "</p>\n<div class=\"chart\" id=\"chart-" + c.id + "\"></div>\n</section>\n";
    specs.push_back({{"id", c.id}, {"spec", c.spec}});
  }
  h += "<footer>Written by <code>ropelab report</code>. Charts: Vega-Lite, drawn in this page by";
  for (const auto& lib : libs) h += " " + lib.name + " " + lib.version;
  h += " (inlined; the page needs no network).</footer>\n";
  h += "<script type=\"application/json\" id=\"report-specs\">" + script_json(specs) + "</script>\n";
  h += R"(<script>
(function () {
  var body = document.body;
  function fail(e) { body.dataset.chartError = String((e && e.message) || e); }
  window.addEventListener('error', function (ev) { fail(ev.error || ev.message); });
  try {
    var charts = JSON.parse(document.getElementById('report-specs').textContent);
    var opts = {renderer: 'svg', actions: {export: true, source: true, compiled: false, editor: false}};
    Promise.all(charts.map(function (c) { return vegaEmbed('#chart-' + c.id, c.spec, opts); }))
      .then(function () { body.dataset.chartsDrawn = String(charts.length); }, fail);
  } catch (e) { fail(e); }
})();
</script>
</body>
</html>
)";
  return h;
}

std::string markdown(const Inputs& in, const std::vector<Table>& tables, const std::vector<Chart>& charts,
                     const std::vector<std::string>& notes, const std::set<std::string>& svgs) {
  std::string m = "# ropelab report\n\nInputs:";
  for (const auto& p : in.paths) m += " `" + p + "`";
  m += "\n";
  for (const auto& t : tables) {
    if (t.rows.empty() && t.when_empty.empty()) continue;
    m += "\n## " + t.title + "\n\n" + t.caption + "\n\n";
    if (t.rows.empty()) {
      m += t.when_empty + "\n";
      continue;
    }
    m += "|";
    for (const auto& c : t.columns) m += " " + md_escape(c) + " |";
    m += "\n|";
    for (size_t i = 0; i < t.columns.size(); ++i) m += t.numeric[i] ? "---:|" : "---|";
    m += "\n";
    for (const auto& row : t.rows) {
      m += "|";
      for (const auto& c : row) m += " " + md_escape(c) + " |";
      m += "\n";
    }
  }
  if (!notes.empty()) {
    m += "\n## Notes\n\n";
    for (const auto& n : notes) m += "- " + n + "\n";
  }
  m += "\n## Charts\n\nSee report.html (all charts, interactive).\n\n";
  for (const auto& c : charts)
    m += svgs.count(c.id) ? "- [" + c.title + "](figures/" + c.id + ".svg)\n"
                          : "- " + c.title + " (spec: figures/" + c.id + ".vl.json)\n";
  return m;
}

}  // namespace

Written write_report(const std::vector<std::string>& paths, const Options& opt) {
  if (opt.out_dir.empty()) throw Error("report: no output directory (--out DIR)");
  const Inputs in = collect_inputs(paths);
  const std::string node_modules = opt.node_modules.empty() ? default_node_modules() : opt.node_modules;
  const std::vector<Library> libs = read_libraries(node_modules);  // before anything is written

  const std::vector<Chart> charts = build_charts(in);
  const std::vector<SummaryRow> rows = summary_rows(in);
  const std::vector<Table> tables = build_tables(in, rows);
  Written w;
  w.notes = make_notes(in);
  w.n_charts = static_cast<int>(charts.size());

  const std::string dir = opt.out_dir, figs = dir + "/figures";
  io::make_dirs(figs);
  const std::string vl2svg = node_modules + "/.bin/vl2svg";
  bool svg = opt.svg;
  if (svg && !node_on_path()) {
    w.notes.push_back("SVG figures not written: node is not on PATH (report.html has every chart).");
    svg = false;
  } else if (svg && !fs::exists(vl2svg)) {
    w.notes.push_back("SVG figures not written: " + vl2svg + " is missing (run scripts/setup).");
    svg = false;
  }
  std::set<std::string> svgs;
  for (const auto& c : charts) {
    const std::string spec_path = figs + "/" + c.id + ".vl.json";
    io::write_atomic(spec_path, c.spec.dump(1, ' ', false, json::error_handler_t::replace) + "\n");
    w.files.push_back(spec_path);
    if (!svg) continue;
    std::string error;
    if (auto text = render_svg(vl2svg, spec_path, error)) {
      io::write_atomic(figs + "/" + c.id + ".svg", *text);
      w.files.push_back(figs + "/" + c.id + ".svg");
      svgs.insert(c.id);
    } else {
      w.notes.push_back("figures/" + c.id + ".svg not written: " + error);
    }
  }

  json data = {{"inputs", in.paths}, {"result_files", in.result_files}, {"notes", w.notes}};
  data["runs"] = json::array();
  for (const auto& r : in.runs)
    data["runs"].push_back({{"label", r.label}, {"dir", r.dir}, {"metrics_records", r.metrics.size()},
                            {"config", r.config}, {"manifest", r.manifest}});
  data["summary"] = json::array();
  auto or_null = [](const auto& v) { return v ? json(*v) : json(); };
  for (const auto& r : rows)
    data["summary"].push_back({{"model", r.model}, {"step", or_null(r.step)},
                               {"protocol", r.protocol.empty() ? json() : json(r.protocol)},
                               {"gamma_intrinsic", or_null(r.gamma_intrinsic)},
                               {"gamma_intrinsic_ci95_lo", or_null(r.intrinsic_lo)},
                               {"gamma_intrinsic_ci95_hi", or_null(r.intrinsic_hi)}, {"theta", or_null(r.theta)},
                               {"T_eval", or_null(r.T_eval)}, {"gamma", or_null(r.gamma)},
                               {"gamma_ci95_lo", or_null(r.ci95_lo)}, {"gamma_ci95_hi", or_null(r.ci95_hi)},
                               {"R2", or_null(r.R2)}, {"gamma_pade", or_null(r.gamma_pade)},
                               {"relative_error", or_null(r.relative_error)},
                               {"uniform_baseline_gamma", or_null(r.uniform_baseline)}});
  data["unknown_kinds"] = json::array();
  for (const auto& u : in.unknown) data["unknown_kinds"].push_back({{"kind", u.kind}, {"file", u.file}, {"count", u.count}});
  data["charts"] = json::array();
  for (const auto& c : charts) data["charts"].push_back({{"id", c.id}, {"title", c.title}, {"caption", c.caption}, {"spec", c.spec}});
  data["libraries"] = json::object();
  for (const auto& lib : libs) data["libraries"][lib.name] = lib.version;

  const std::pair<std::string, std::string> outputs[] = {
      {dir + "/report-data.json", data.dump(1, ' ', false, json::error_handler_t::replace) + "\n"},
      {dir + "/between_trainings.jsonl", jsonl(in.between_trainings)},
      {dir + "/summary.md", markdown(in, tables, charts, w.notes, svgs)},
      {dir + "/report.html", html_page(in, tables, charts, w.notes, libs)}};
  for (const auto& [path, text] : outputs) {
    io::write_atomic(path, text);
    w.files.push_back(path);
  }
  return w;
}

}  // namespace ropelab::report
