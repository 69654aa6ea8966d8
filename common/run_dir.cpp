#include "common/run_dir.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/io.h"

namespace ropelab::rundir {
namespace fs = std::filesystem;

std::string config_path(const std::string& run) { return run + "/config.json"; }
std::string metrics_path(const std::string& run) { return run + "/metrics.jsonl"; }
std::string builds_path(const std::string& run) { return run + "/builds.jsonl"; }
std::string profile_path(const std::string& run) { return run + "/profile.json"; }
std::string checkpoints_dir(const std::string& run) { return run + "/checkpoints"; }
std::string manifest_path(const std::string& run) { return checkpoints_dir(run) + "/manifest.json"; }

std::string checkpoint_file_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step_%08lld.pt", static_cast<long long>(step));
  return name;
}

std::string checkpoint_path(const std::string& run, const std::string& file) { return checkpoints_dir(run) + "/" + file; }

std::string run_of_checkpoint(const std::string& ckpt_path) {
  return fs::path(ckpt_path).parent_path().parent_path().string();
}

bool is_run_dir(const std::string& dir) {
  return fs::is_regular_file(config_path(dir)) && fs::is_regular_file(metrics_path(dir));
}

std::string result_path(const std::string& run, const std::string& name) { return run + "/" + name + ".jsonl"; }
std::string partial_path(const std::string& result) { return result + ".partial"; }
std::string stage_log_path(const std::string& run, const std::string& stage) { return run + "/" + stage + ".log"; }

std::vector<CheckpointEntry> read_manifest(const std::string& run_dir) {
  const std::string path = manifest_path(run_dir);
  std::vector<CheckpointEntry> out;
  if (!io::exists(path)) return out;
  const auto j = io::read_json(path);
  // step and tokens_seen must be JSON integers: get<int64_t> of 1e300 is an undefined cast.
  auto integer = [&](const nlohmann::json& e, const char* key) {
    if (!e.at(key).is_number_integer())
      throw Error(path + ": malformed manifest (checkpoint " + std::to_string(out.size()) + ": \"" + key +
                  "\" is not an integer)");
    return e.at(key).get<int64_t>();
  };
  try {
    for (const auto& e : j.at("checkpoints"))
      out.push_back({integer(e, "step"), e.at("file").get<std::string>(), integer(e, "tokens_seen")});
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": malformed manifest (" + e.what() + ")");
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

void add_to_manifest(const std::string& run, const CheckpointEntry& entry) {
  auto entries = read_manifest(run);
  entries.erase(std::remove_if(entries.begin(), entries.end(), [&](const auto& e) { return e.step == entry.step; }),
                entries.end());
  entries.push_back(entry);
  io::make_dirs(checkpoints_dir(run));
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : entries) list.push_back({{"step", e.step}, {"file", e.file}, {"tokens_seen", e.tokens_seen}});
  io::write_json_atomic(manifest_path(run), {{"checkpoints", list}});
}

std::string theta_label(double theta) {
  // Shortest form that reads back exactly: 10000 -> 1e4, 250000 -> 2.5e5, 500 -> 500.
  const int e = static_cast<int>(std::floor(std::log10(theta)));
  char buf[64];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, theta / std::pow(10.0, e));
    std::string mant = buf;
    std::string label = e >= 4 ? mant + "e" + std::to_string(e) : "";
    if (label.empty()) {
      std::snprintf(buf, sizeof buf, "%.*g", digits + std::max(e, 0), theta);
      label = buf;
    }
    if (std::stod(label) == theta) return label;
  }
  std::snprintf(buf, sizeof buf, "%.17g", theta);
  return buf;
}

std::string study_run_dir(const std::string& study, double theta, std::optional<uint64_t> seed) {
  return study + "/theta-" + theta_label(theta) + (seed ? "-seed-" + std::to_string(*seed) : "");
}
std::string study_log_path(const std::string& study) { return study + "/pilot.jsonl"; }
std::string study_report_dir(const std::string& study) { return study + "/report"; }

}  // namespace ropelab::rundir
