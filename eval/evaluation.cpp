#include "eval/evaluation.h"

#include <torch/version.h>

#include <filesystem>

#include "common/io.h"
#include "common/run_dir.h"
#include "train/checkpoint.h"

namespace ropelab::eval {

OpenedModel open_model(const std::string& path) {
  auto loaded = train::load_model(path);
  OpenedModel m;
  m.model = loaded.model;
  m.state = std::move(loaded.state);
  m.path = path;
  m.model_id = "ropelab:" + std::filesystem::path(rundir::run_of_checkpoint(path)).filename().string();
  return m;
}

std::string OpenedModel::data_dir() const { return state.at("data").at("dir").get<std::string>(); }

nlohmann::json OpenedModel::provenance() const {
  return {{"model_id", model_id}, {"checkpoint", path}, {"step", state.at("step")}, {"versions", versions()}};
}

nlohmann::json versions() {
  return {{"ropelab", ROPELAB_VERSION},
          {"libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR)}};
}

void RecordWriter::write(nlohmann::json record) {
  for (auto it = shared_.begin(); it != shared_.end(); ++it)
    if (!record.contains(it.key())) record[it.key()] = it.value();
  if (!out_.empty()) io::append_jsonl(out_, record);
  records_.push_back(std::move(record));
}

}  // namespace ropelab::eval
