#include "theory/decay_input.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/io.h"
#include "common/text.h"

namespace ropelab::decay_input {
namespace {

const char* kAccepted =
    "accepted formats: TAF result JSON (.json, \"attn_by_distance\": {\"<d>\": "
    "{\"mean_across_seeds\": x, \"per_seed_means\": [...]}}), TAF CLI JSON (.json, "
    "\"attn_by_distance\": {\"<d>\": x}), CSV (.csv, header distance,A[,seed])";

std::string num(double x) {
  std::ostringstream s;
  s.precision(10);
  s << x;
  return s.str();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// Whole-string number parses: "12abc" and "" are refused, not truncated.
std::optional<double> to_double(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}
std::optional<int64_t> to_int(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (*end != '\0') return std::nullopt;
  return static_cast<int64_t>(v);
}

// Per-seed values of one distance, keyed by seed label (or by position when unlabelled).
using SeedValues = std::map<int64_t, double>;

double positive_number(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
    throw Error(where + " must be a number > 0, got " + v.dump());
  return v.get<double>();
}

SeedValues read_per_seed(const nlohmann::json& v, const nlohmann::json& seeds,
                         const std::string& where) {
  SeedValues out;
  if (v.is_array()) {
    const bool labelled = seeds.is_array();
    if (labelled && seeds.size() != v.size())
      throw Error(where + " has " + std::to_string(v.size()) + " values but \"seeds\" lists " +
                  std::to_string(seeds.size()));
    for (size_t i = 0; i < v.size(); ++i) {
      const int64_t label = labelled ? seeds[i].get<int64_t>() : static_cast<int64_t>(i);
      out[label] = positive_number(v[i], where + "[" + std::to_string(i) + "]");
    }
  } else if (v.is_object()) {
    for (const auto& [key, val] : v.items()) {
      const auto seed = to_int(key);
      if (!seed) throw Error(where + ": key \"" + key + "\" is not an integer seed");
      out[*seed] = positive_number(val, where + "[\"" + key + "\"]");
    }
  } else {
    throw Error(where + " must be an array or an object seed -> value, got " + v.dump());
  }
  return out;
}

// Fills per_seed_A from one SeedValues per distance, rows in `order`; all
// distances must name the same seeds. Unlabelled seeds leave c.seeds empty.
void set_per_seed(fit::DecayCurve& c, const std::vector<SeedValues>& rows,
                  const std::vector<int64_t>& order, bool labelled, const std::string& source) {
  const SeedValues& first = rows.front();
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() != first.size())
      throw Error(source + ": distance " + num(c.distances[i]) + " has " +
                  std::to_string(rows[i].size()) + " per-seed values, distance " +
                  num(c.distances[0]) + " has " + std::to_string(first.size()));
    for (const auto& [seed, v] : first)
      if (!rows[i].count(seed))
        throw Error(source + ": seed " + std::to_string(seed) + " has no value at distance " +
                    num(c.distances[i]) + " (every seed needs every distance)");
  }
  for (int64_t seed : order) {
    std::vector<double> row;
    for (const auto& r : rows) row.push_back(r.at(seed));
    c.per_seed_A.push_back(row);
    if (labelled) c.seeds.push_back(seed);
  }
}

}  // namespace

DecayInput parse_decay_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object() || !j.contains("attn_by_distance") || !j["attn_by_distance"].is_object() ||
      j["attn_by_distance"].empty())
    throw Error(source + ": no non-empty \"attn_by_distance\" object; " + kAccepted);
  const auto& abd = j["attn_by_distance"];
  const nlohmann::json seeds = j.value("seeds", nlohmann::json());
  if (!seeds.is_null() && !(seeds.is_array() && std::all_of(seeds.begin(), seeds.end(),
                                                            [](auto& s) { return s.is_number_integer(); })))
    throw Error(source + ": \"seeds\" must be an array of integers, got " + seeds.dump());
  if (seeds.is_array() && std::set<int64_t>(seeds.begin(), seeds.end()).size() != seeds.size())
    throw Error(source + ": \"seeds\" lists a seed twice: " + seeds.dump());

  // Distance keys are strings; sort them numerically.
  std::vector<std::pair<double, std::string>> keys;
  for (const auto& [key, val] : abd.items()) {
    const auto d = to_double(key);
    if (!d || *d <= 0)
      throw Error(source + ": attn_by_distance key \"" + key + "\" is not a distance > 0");
    keys.emplace_back(*d, key);
  }
  std::sort(keys.begin(), keys.end());

  DecayInput in;
  in.path = source;
  const bool cli = abd.begin()->is_number();
  in.format = cli ? "taf_cli_json" : "taf_json";
  std::vector<SeedValues> per_seed;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& [d, key] = keys[i];
    if (i > 0 && keys[i - 1].first == d)
      throw Error(source + ": distance " + num(d) + " appears twice in attn_by_distance");
    const std::string where = source + ": attn_by_distance[\"" + key + "\"]";
    const auto& v = abd[key];
    in.curve.distances.push_back(d);
    if (cli) {
      if (v.is_object())
        throw Error(where + " is an object but other entries are plain numbers");
      in.curve.A.push_back(positive_number(v, where));
      continue;
    }
    if (!v.is_object() || !v.contains("mean_across_seeds"))
      throw Error(where + " must be an object with \"mean_across_seeds\", got " + v.dump());
    in.curve.A.push_back(positive_number(v["mean_across_seeds"], where + ".mean_across_seeds"));
    const bool has_seeds = v.contains("per_seed_means");
    if (i > 0 && has_seeds != !per_seed.empty())
      throw Error(where + ": per_seed_means must be given at every distance or none");
    if (has_seeds) per_seed.push_back(read_per_seed(v["per_seed_means"], seeds, where + ".per_seed_means"));
  }
  if (!per_seed.empty()) {
    // Keep the file's seed order; object keys (and positions) in numeric order.
    const bool labelled = seeds.is_array() || abd[keys[0].second]["per_seed_means"].is_object();
    std::vector<int64_t> order;
    if (seeds.is_array() && abd[keys[0].second]["per_seed_means"].is_array()) {
      order = seeds.get<std::vector<int64_t>>();
    } else {
      for (const auto& [seed, v] : per_seed.front()) order.push_back(seed);
    }
    set_per_seed(in.curve, per_seed, order, labelled, source);
  }

  if (j.contains("model") && j["model"].is_string()) in.model = j["model"].get<std::string>();
  if (j.contains("corpus") && j["corpus"].is_string()) in.corpus = j["corpus"].get<std::string>();
  if (j.contains("n_prompts_per_distance") && j["n_prompts_per_distance"].is_number_integer())
    in.n_prompts_per_distance = j["n_prompts_per_distance"].get<int>();
  for (const char* key : {"theta", "rope_theta"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    in.theta = positive_number(j[key], source + ": \"" + key + "\"");
    break;
  }
  return in;
}

DecayInput parse_decay_csv(const std::string& text, const std::string& source) {
  std::istringstream lines(text);
  std::string line;
  int lineno = 0, col_d = -1, col_a = -1, col_seed = -1;
  size_t n_cols = 0;
  std::map<double, int> first_line;                // (distance) → line, for duplicates
  std::map<std::pair<int64_t, double>, int> seen;  // (seed, distance) → line
  std::vector<int64_t> seed_order;
  std::map<int64_t, std::map<double, double>> by_seed;
  std::map<double, double> plain;
  auto at = [&](const std::string& msg) { return Error(source + ":" + std::to_string(lineno) + ": " + msg); };

  while (std::getline(lines, line)) {
    ++lineno;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::vector<std::string> fields;
    for (const auto& f : text::split(t)) fields.push_back(trim(f));
    if (t.back() == ',') fields.push_back("");
    if (n_cols == 0) {  // the header
      n_cols = fields.size();
      for (size_t i = 0; i < fields.size(); ++i) {
        const std::string name = lower(fields[i]);
        int* col = name == "distance" ? &col_d : name == "a" ? &col_a : name == "seed" ? &col_seed : nullptr;
        if (!col) throw at("unknown column \"" + fields[i] + "\"; expected distance, A and optional seed");
        if (*col >= 0) throw at("column \"" + fields[i] + "\" appears twice");
        *col = static_cast<int>(i);
      }
      if (col_d < 0 || col_a < 0) throw at("header must name the columns distance and A (optional seed)");
      continue;
    }
    if (fields.size() != n_cols)
      throw at("expected " + std::to_string(n_cols) + " fields like the header, got " +
               std::to_string(fields.size()));
    const auto d = to_double(fields[col_d]);
    if (!d) throw at("distance is not a number: \"" + fields[col_d] + "\"");
    if (*d <= 0) throw at("distance must be > 0, got " + fields[col_d]);
    const auto a = to_double(fields[col_a]);
    if (!a) throw at("A is not a number: \"" + fields[col_a] + "\"");
    if (*a <= 0) throw at("A must be > 0, got " + fields[col_a]);
    if (col_seed < 0) {
      if (first_line.count(*d))
        throw at("distance " + num(*d) + " repeats line " + std::to_string(first_line[*d]) +
                 " (add a seed column for several seeds)");
      first_line[*d] = lineno;
      plain[*d] = *a;
      continue;
    }
    const auto seed = to_int(fields[col_seed]);
    if (!seed) throw at("seed is not an integer: \"" + fields[col_seed] + "\"");
    const auto key = std::make_pair(*seed, *d);
    if (seen.count(key))
      throw at("seed " + std::to_string(*seed) + " at distance " + num(*d) + " repeats line " +
               std::to_string(seen[key]));
    seen[key] = lineno;
    if (!by_seed.count(*seed)) seed_order.push_back(*seed);
    by_seed[*seed][*d] = *a;
  }
  if (n_cols == 0) throw Error(source + ": empty CSV; expected a header distance,A[,seed]");
  if (plain.empty() && by_seed.empty()) throw Error(source + ": no data rows after the header");

  DecayInput in;
  in.path = source;
  in.format = "csv";
  if (col_seed < 0) {
    for (const auto& [d, a] : plain) in.curve.distances.push_back(d), in.curve.A.push_back(a);
    return in;
  }
  std::map<double, bool> all_d;
  for (const auto& [s, m] : by_seed)
    for (const auto& [d, a] : m) all_d[d] = true;
  for (const auto& [d, unused] : all_d) in.curve.distances.push_back(d);
  // Every seed must cover every distance, or the mean would mix different seeds.
  for (int64_t s : seed_order)
    for (const auto& [d, unused] : all_d)
      if (!by_seed[s].count(d))
        throw Error(source + ": seed " + std::to_string(s) + " has no row for distance " + num(d) +
                    " (every seed needs every distance)");
  for (int64_t s : seed_order) {
    std::vector<double> row;
    for (const auto& [d, unused] : all_d) row.push_back(by_seed[s][d]);
    in.curve.per_seed_A.push_back(row);
    in.curve.seeds.push_back(s);
  }
  for (size_t i = 0; i < in.curve.distances.size(); ++i) {
    double mean = 0;
    for (const auto& row : in.curve.per_seed_A) mean += row[i] / in.curve.per_seed_A.size();
    in.curve.A.push_back(mean);
  }
  return in;
}

DecayInput read_decay_curve(const std::string& path) {
  const std::string text = io::read_file(path);
  const auto dot = path.rfind('.');
  const std::string ext = dot == std::string::npos ? "" : lower(path.substr(dot));
  const auto first = text.find_first_not_of(" \t\r\n");
  const bool looks_json = first != std::string::npos && text[first] == '{';
  bool looks_csv = false;  // a header naming "distance" on the first non-comment line
  std::istringstream lines(text);
  for (std::string line; !looks_json && std::getline(lines, line);) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    looks_csv = lower(t).find("distance") != std::string::npos && t.find(',') != std::string::npos;
    break;
  }
  if (ext == ".json" || (ext != ".csv" && looks_json)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range (a number like 1e999)
      throw Error(path + ": not valid JSON (" + e.what() + "); NaN or Infinity are not JSON");
    }
    return parse_decay_json(j, path);
  }
  if (ext == ".csv" || looks_csv) return parse_decay_csv(text, path);
  throw Error(path + ": unknown decay-curve format; " + kAccepted);
}

}  // namespace ropelab::decay_input
