#include "study/pilot.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/io.h"

namespace ropelab::study {
namespace fs = std::filesystem;

const std::vector<std::string>& run_stages() {
  static const std::vector<std::string> names = {"train", "gamma", "niah", "kv"};
  return names;
}

const std::vector<std::string>& stage_names() {
  static const std::vector<std::string> names = [] {
    auto all = run_stages();
    all.push_back("report");
    return all;
  }();
  return names;
}

const std::vector<std::string>& reserved_flags(const std::string& stage) {
  static const std::map<std::string, std::vector<std::string>> reserved = {
      {"train", {"config", "out", "resume", "rope-theta"}},
      {"gamma", {"run", "ckpt", "out"}},
      {"niah", {"ckpt", "out"}},
      {"kv", {"ckpt", "out"}},
      {"report", {"out"}}};
  return reserved.at(stage);
}

namespace {
bool has_flag(const Study& s, const std::string& stage, const std::string& key) {
  const auto it = s.flags.find(stage);
  if (it == s.flags.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const auto& kv) { return kv.first == key; });
}
// The values the stage's flag `key` is given (comma lists split), or `fallback`.
std::vector<std::string> flag_values(const Study& s, const std::string& stage, const std::string& key,
                                     const std::vector<std::string>& fallback) {
  std::vector<std::string> out;
  const auto it = s.flags.find(stage);
  if (it != s.flags.end())
    for (const auto& [k, v] : it->second)
      if (k == key) {
        size_t start = 0;
        while (start <= v.size()) {
          const size_t comma = v.find(',', start);
          out.push_back(v.substr(start, comma - start));
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      }
  return out.empty() ? fallback : out;
}
// Whether the stage's flag `key` is given and its value contains `text`.
bool flag_mentions(const Study& s, const std::string& stage, const std::string& key, const std::string& text) {
  const auto it = s.flags.find(stage);
  if (it == s.flags.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [&](const auto& kv) { return kv.first == key && kv.second.find(text) != std::string::npos; });
}
}  // namespace

Study load_study(const std::string& path) {
  Study s;
  s.file = path;
  if (!io::exists(path)) throw Error(path + ": no such study file");
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(path);
  } catch (const CLI::Error& e) {
    throw Error(path + ": not a readable TOML study file (" + e.what() + ")");
  }
  auto bad = [&](const std::string& key, const std::string& what) { return Error(path + ": key \"" + key + "\": " + what); };
  auto single = [&](const CLI::ConfigItem& it) {
    if (it.inputs.size() != 1) throw bad(it.fullname(), "expected one value");
    return it.inputs[0];
  };
  if (std::none_of(items.begin(), items.end(), [](const auto& it) { return it.parents.empty() && it.name == "study"; }))
    throw Error(path + ": not a study file (no `study = \"NAME\"` key; train recipes go to `ropelab train --config`)");
  const auto& stages = stage_names();
  for (const auto& it : items) {
    if (it.name == "++" && it.parents.size() == 2 && it.parents[0] == "design") {  // [design.NAME], maybe without keys
      if (it.parents[1].find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
        throw bad("design." + it.parents[1], "a design name is lowercase letters, digits and dashes");
      if (std::none_of(s.designs.begin(), s.designs.end(), [&](const auto& d) { return d.first == it.parents[1]; }))
        s.designs.push_back({it.parents[1], {}});
    }
    if (it.name == "++" || it.name == "--") continue;  // section markers
    if (it.parents.empty()) {
      if (it.name == "study") s.name = single(it);
      else if (it.name == "out") s.out = single(it);
      else if (it.name == "train-recipe") s.train_recipe = single(it);
      else if (it.name == "thetas") {
        for (const auto& v : it.inputs) {
          size_t used = 0;
          double t = 0;
          try { t = std::stod(v, &used); } catch (...) { used = 0; }
          if (used != v.size() || !(t > 0) || !std::isfinite(t)) throw bad("thetas", "\"" + v + "\" is not a θ > 0");
          s.thetas.push_back(t);
        }
      } else if (it.name == "seeds") {
        if (it.inputs.empty() || (it.inputs.size() == 1 && it.inputs[0].empty()))
          throw bad("seeds", "is an empty list; list the training seeds (each θ is trained once per seed) or leave the "
                             "key out (one run per θ at the recipe's seed)");
        for (const auto& v : it.inputs) {
          const bool digits = !v.empty() && v.size() <= 19 && v.find_first_not_of("0123456789") == std::string::npos;
          if (!digits) throw bad("seeds", "\"" + v + "\" is not a seed (an integer >= 0)");
          s.seeds.push_back(std::stoull(v));
        }
      } else {
        throw bad(it.name, "unknown top-level key (study, out, train-recipe, thetas, seeds; stage flags go in [" +
                               std::string("train], [gamma], [niah], [kv] or [report])"));
      }
      continue;
    }
    const std::string& section = it.parents[0];
    if (section == "design") {  // [design.NAME]: train flags of one design
      if (it.parents.size() != 2) throw bad(it.fullname(), "design keys go in a [design.NAME] section");
      const std::string& name = it.parents[1];
      if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
        throw bad(it.fullname(), "a design name is lowercase letters, digits and dashes");
      const auto& res = reserved_flags("train");
      if (std::find(res.begin(), res.end(), it.name) != res.end())
        throw bad(it.fullname(), "is set by the pilot itself (per θ), not by the study file");
      auto d = std::find_if(s.designs.begin(), s.designs.end(), [&](const auto& x) { return x.first == name; });
      if (d == s.designs.end()) d = s.designs.insert(s.designs.end(), {name, {}});
      for (const auto& v : it.inputs) d->second.push_back({it.name, v});
      continue;
    }
    if (it.parents.size() == 1 && section == "slurm") {  // checked by study/slurm_launcher.h
      for (const auto& v : it.inputs) s.slurm.push_back({it.name, v});
      continue;
    }
    if (it.parents.size() != 1 || std::find(stages.begin(), stages.end(), section) == stages.end())
      throw bad(it.fullname(), "unknown section (train, gamma, niah, kv, report, slurm, design.NAME)");
    if (it.name == "skip") {
      const auto v = single(it);
      if (v != "true" && v != "false") throw bad(it.fullname(), "expected true or false");
      s.skip[section] = v == "true";
      continue;
    }
    const auto& res = reserved_flags(section);
    if (std::find(res.begin(), res.end(), it.name) != res.end())
      throw bad(it.fullname(), "is set by the pilot itself (per θ), not by the study file");
    for (const auto& v : it.inputs) s.flags[section].push_back({it.name, v});
  }
  if (s.name.empty()) throw Error(path + ": key \"study\" (the study's name) must not be empty");
  if (s.out.empty()) throw Error(path + ": key \"out\" (the study directory) is required");
  if (s.train_recipe.empty()) throw Error(path + ": key \"train-recipe\" is required");
  if (!io::exists(s.train_recipe)) throw bad("train-recipe", s.train_recipe + " does not exist");
  if (s.thetas.empty()) throw Error(path + ": key \"thetas\" (a list of RoPE bases) is required");
  std::set<std::string> labels;
  for (double t : s.thetas)
    if (!labels.insert(theta_label(t)).second) throw bad("thetas", theta_label(t) + " is listed twice");
  std::set<uint64_t> seen;
  for (uint64_t seed : s.seeds)
    if (!seen.insert(seed).second) throw bad("seeds", std::to_string(seed) + " is listed twice");
  for (const auto& [name, flags] : s.designs)
    for (const auto& [k, v] : flags)
      if (has_flag(s, "train", k))
        throw bad("design." + name + "." + k, "is also in [train]; a design's flag belongs to the design alone");
  if (!s.seeds.empty() && has_flag(s, "train", "seed"))
    throw bad("train.seed", "conflicts with the top-level `seeds` list, which gives each run its seed");
  return s;
}

std::vector<Member> members(const Study& s) {
  std::vector<std::string> designs;
  for (const auto& d : s.designs) designs.push_back(d.first);
  if (designs.empty()) designs.push_back("");
  std::vector<Member> all;
  for (const auto& design : designs)
    for (double theta : s.thetas) {
      if (s.seeds.empty()) all.push_back({theta, std::nullopt, design});
      for (uint64_t seed : s.seeds) all.push_back({theta, seed, design});
    }
  return all;
}

std::string member_label(const Member& m) {
  return (m.design.empty() ? "" : m.design + " ") + "θ=" + theta_label(m.theta) +
         (m.seed ? " seed=" + std::to_string(*m.seed) : "");
}

std::string run_dir(const Study& s, const Member& m) {
  const fs::path dir = rundir::study_run_dir(s.out, m.theta, m.seed);
  if (m.design.empty()) return dir.string();
  return (dir.parent_path() / (m.design + "-" + dir.filename().string())).string();
}

bool skipped_by_file(const Study& s, const std::string& stage) {
  const auto it = s.skip.find(stage);
  return it != s.skip.end() && it->second;
}

namespace {

struct RunState {
  int64_t max_steps = -1;           // from config.json; -1 when the run has not started
  std::vector<int64_t> steps;       // checkpoint steps in the manifest
  std::string last_file;            // the newest checkpoint's path
};

RunState run_state(const std::string& dir) {
  RunState r;
  if (!io::exists(rundir::config_path(dir))) return r;
  const auto cfg = io::read_json(rundir::config_path(dir));
  r.max_steps = cfg.value("max_steps", int64_t(-1));
  for (const auto& e : rundir::read_manifest(dir)) {
    r.steps.push_back(e.step);
    r.last_file = rundir::checkpoint_path(dir, e.file);
  }
  return r;
}

bool train_complete(const RunState& r) { return r.max_steps > 0 && !r.steps.empty() && r.steps.back() >= r.max_steps; }

void append_flags(const Study& s, const std::string& stage, std::vector<std::string>& args) {
  const auto it = s.flags.find(stage);
  if (it == s.flags.end()) return;
  for (const auto& [k, v] : it->second) args.push_back("--" + k + "=" + v);
}

}  // namespace

Step plan_step(const Study& s, const std::string& stage, const Member& m) {
  Step st;
  st.stage = stage;
  st.label = stage == "report" ? "study" : member_label(m);
  const auto skip = s.skip.find(stage);
  if (skip != s.skip.end() && skip->second) {
    st.skipped = "skip = true in the study file";
    return st;
  }
  if (stage == "report") {
    st.args = {"report", s.out};
    append_flags(s, stage, st.args);
    st.args.insert(st.args.end(), {"--out", rundir::study_report_dir(s.out)});
    return st;
  }
  const std::string dir = run_dir(s, m);
  const RunState run = run_state(dir);
  const std::string final_ckpt = run.last_file.empty() ? "<final checkpoint of " + dir + ">" : run.last_file;

  if (stage == "train") {
    if (train_complete(run)) {
      st.skipped = "complete (step " + std::to_string(run.steps.back()) + " of " + std::to_string(run.max_steps) + ")";
    } else if (run.max_steps > 0) {
      st.args = {"train", "--resume", dir};
    } else {
      st.args = {"train", "--config", s.train_recipe, "--rope-theta=" + theta_label(m.theta)};
      if (m.seed) st.args.push_back("--seed=" + std::to_string(*m.seed));
      append_flags(s, stage, st.args);
      for (const auto& [name, flags] : s.designs)  // the design's own flags (never also in [train])
        if (name == m.design)
          for (const auto& [k, v] : flags) st.args.push_back("--" + k + "=" + v);
      st.args.insert(st.args.end(), {"--out", dir});
    }
    return st;
  }
  if (stage == "gamma") {
    const std::string out = rundir::result_path(dir, "gamma");
    if (train_complete(run) && io::exists(out)) {
      // Complete when every checkpoint has a record of every protocol asked for
      // (a record without one predates protocols: taf).
      const auto protocols = flag_values(s, "gamma", "protocol", {"taf"});
      std::set<std::pair<int64_t, std::string>> measured;
      for (const auto& r : io::read_jsonl(out)) {
        if (!r.contains("step") || !r["step"].is_number_integer()) continue;
        const auto p = r.contains("measurement") ? r["measurement"].value("protocol", nlohmann::json()) : nlohmann::json();
        measured.insert({r["step"].get<int64_t>(), p.is_string() ? p.get<std::string>() : "taf"});
      }
      const bool all = std::all_of(run.steps.begin(), run.steps.end(), [&](int64_t x) {
        return std::all_of(protocols.begin(), protocols.end(), [&](const auto& p) { return measured.count({x, p}) > 0; });
      });
      if (all) {
        st.skipped = "complete (" + std::to_string(run.steps.size()) + " checkpoints measured)";
        return st;
      }
    }
    st.args = {"eval", "gamma", "--run", dir};
    append_flags(s, stage, st.args);
    st.args.insert(st.args.end(), {"--out", out});
    return st;
  }
  // niah and kv: one evaluation of the final checkpoint, committed by a rename.
  st.final = rundir::result_path(dir, stage);
  st.partial = rundir::partial_path(st.final);
  if (io::exists(st.final)) {
    st.skipped = "complete (" + st.final + " exists)";
    return st;
  }
  st.args = {"eval", stage, "--ckpt", final_ckpt};
  append_flags(s, stage, st.args);
  // kv's D_f, and niah's α_opt from the measured γ (a sweep brings it along), read the gamma stage's records.
  const bool wants_gamma = stage == "kv" || (stage == "niah" && (flag_mentions(s, "niah", "scaling", "alpha_opt_measured") ||
                                                                 flag_mentions(s, "niah", "scaling", "-sweep:")));
  if (wants_gamma && !has_flag(s, stage, "gamma") && !has_flag(s, stage, "gamma-from") &&
      !(s.skip.count("gamma") && s.skip.at("gamma")))
    st.args.insert(st.args.end(), {"--gamma-from", rundir::result_path(dir, "gamma")});
  st.args.insert(st.args.end(), {"--out", st.partial});
  return st;
}

}  // namespace ropelab::study
