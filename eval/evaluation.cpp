#include "eval/evaluation.h"

#include <torch/version.h>

#include <cctype>
#include <filesystem>

#include "common/error.h"
#include "common/io.h"
#include "common/run_dir.h"
#include "model/hf_format.h"
#include "theory/gamma_record.h"
#include "train/checkpoint.h"
#include "train/fingerprint.h"

namespace ropelab::eval {
namespace fs = std::filesystem;

namespace {

OpenedModel open_checkpoint(const std::string& path) {
  auto loaded = train::load_model(path);
  OpenedModel m;
  m.model = loaded.model;
  m.state = std::move(loaded.state);
  m.path = path;
  m.model_id = "ropelab:" + fs::path(rundir::run_of_checkpoint(path)).filename().string();
  return m;
}

OpenedModel open_hf(const std::string& path, const OpenOptions& open) {
  OpenedModel m;
  m.hf = true;
  m.path = path;
  m.model = model::import_hf(path, open.dtype);
  const fs::path dir = fs::path(path).lexically_normal();
  const std::string name = (dir.has_filename() ? dir : dir.parent_path()).filename().string();
  const int64_t step = step_of_folder(name);
  // A checkpoint folder (stepN/) is named by its model's folder; a model folder by itself.
  const std::string model_name = step >= 0 ? fs::absolute(dir).parent_path().filename().string() : name;
  m.model_id = open.model_id.empty() ? model_name : open.model_id;
  m.state = {{"config", io::read_json(path + "/config.json")},
             {"step", step >= 0 ? nlohmann::json(step) : nlohmann::json(nullptr)},
             {"tokens_seen", nullptr}};
  m.data_dir_hf = open.data_dir.empty() ? "runs/data/hf-" + model_name : open.data_dir;
  return m;
}

// The tokenizer of a HF directory, else of its parent folder (a checkpoint
// folder of a sweep often keeps it in the model's folder).
std::string hf_tokenizer(const std::string& dir) {
  if (auto own = tokenizer_in(dir); !own.empty()) return own;
  const auto parent = fs::path(dir).lexically_normal().parent_path().string();
  if (auto theirs = parent.empty() ? "" : tokenizer_in(parent); !theirs.empty()) return theirs;
  throw Error(dir + ": has no tokenizer.json or tokenizer.model (nor has its parent folder); NIAH, KV retrieval and "
              "perplexity need the model's tokenizer");
}

}  // namespace

std::string tokenizer_in(const std::string& dir) {
  for (const char* f : {"tokenizer.json", "tokenizer.model"})
    if (io::exists(dir + "/" + f)) return dir + "/" + f;
  return "";
}

bool is_hf_dir(const std::string& path) { return fs::is_directory(path) && io::exists(path + "/config.json"); }

int64_t step_of_folder(const std::string& name) {
  if (name.find("step") == std::string::npos && name.find("checkpoint") == std::string::npos) return -1;
  size_t begin = name.size();
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(name[begin - 1]))) --begin;
  if (begin == name.size() || name.size() - begin > 15) return -1;
  return std::stoll(name.substr(begin));
}

OpenedModel open_model(const std::string& path, const OpenOptions& open) {
  if (fs::is_directory(path)) {
    if (!is_hf_dir(path)) throw Error(path + ": a directory without config.json (expected a checkpoint file or a Hugging Face directory)");
    return open_hf(path, open);
  }
  return open_checkpoint(path);
}

data::PreparedData OpenedModel::data() const {
  if (!hf) return data::load_prepared(state.at("data").at("dir").get<std::string>());
  const std::string tokenizer = hf_tokenizer(path);
  if (!io::exists(data_dir_hf + "/meta.json")) {
    data::PrepareOptions p;
    p.tokenizer_path = tokenizer;
    p.out_dir = data_dir_hf;
    data::prepare_data(p);
  }
  auto d = data::load_prepared(data_dir_hf);
  if (d.meta.at("tokenizer").at("sha256") != io::sha256_hex(io::read_file(tokenizer)))
    throw Error(data_dir_hf + ": prepared with another tokenizer than " + tokenizer + "; pass another --data-dir");
  return d;
}

nlohmann::json OpenedModel::arch() const {
  const auto& c = model->cfg;
  nlohmann::json a = {{"d_model", c.d_model}, {"n_heads", c.n_heads}, {"n_layers", c.n_layers}, {"d_head", c.d_head},
                      {"n_kv_heads", c.n_kv_heads}, {"n_params_M", model->parameter_count() / 1e6},
                      {"rope_theta", c.rope_theta}, {"T_train", c.T_train}, {"rotary_fraction", c.rotary_fraction},
                      {"family", hf ? "huggingface" : "ropelab"}};
  // The RoPE method of the full layers, with its parameters as transformers names them.
  a["rope_scaling"] = c.rope_scaling;
  a["rope"] = model::rope_params_json(c.rope_params());
  if (c.qk_norm) a["qk_norm"] = true;
  if (!c.layer_pattern.empty()) {  // per-layer attention: each layer's type and what belongs to it
    a["layer_pattern"] = c.layer_pattern;
    std::vector<std::string> types;
    for (int64_t l = 0; l < c.n_layers; ++l) types.push_back(c.layer_type(l));
    a["layer_types"] = types;
    a["sliding_window"] = c.sliding_window;
    a["sliding_rope_theta"] = c.sliding_rope_theta > 0 ? c.sliding_rope_theta : c.rope_theta;
    if (c.sliding_window > 0) {  // the sliding layers' own RoPE, as the full layers' under "rope"
      a["sliding_rope"] = model::rope_params_json(c.rope_params_of("sliding"));
      a["sliding_rotary_fraction"] = c.rope_geometry_of("sliding").rotary_fraction;
    }
    if (c.nope_attn_scale > 0) a["nope_attn_scale"] = {{"scale", c.nope_attn_scale}, {"floor", c.nope_floor_scale}};
  }
  if (c.attention_window > 0) a["attention_window"] = c.attention_window;
  if (hf) {
    a["architecture"] = model::hf_architecture_of(state.at("config"));
    a["dtype"] = c10::toString(model->tok_emb->weight.scalar_type());
  }
  return a;
}

nlohmann::json OpenedModel::provenance() const {
  const auto device = model->tok_emb->weight.device().str();
  return {{"model_id", model_id},
          {"arch", arch()},  // every record of every evaluation: one arch block, read from one path
          {"checkpoint", path},
          {"step", state.at("step")},
          {"versions", versions()},
          {"ropelab",
           {{"build", train::build_fingerprint(device)},
            {"train_build", state.contains("build") ? state["build"] : nlohmann::json(nullptr)}}}};
}

nlohmann::json measured_gamma_record(const OpenedModel& om, const GammaSource& from) {
  if (!io::exists(from.file)) throw Error(from.file + ": no such γ results file (--gamma-from)");
  const nlohmann::json s = om.state.value("step", nlohmann::json());  // null for a HF directory not named stepN
  const std::optional<int64_t> step = s.is_number_integer() ? std::optional<int64_t>(s.get<int64_t>()) : std::nullopt;
  const auto rec = find_gamma_record(io::read_jsonl(from.file), om.model_id, om.path, step, from.protocol);
  if (!rec)
    throw Error(from.file + ": no γ record for " + om.path + (from.protocol.empty() ? "" : " under protocol " + from.protocol) +
                " (expected one with a measurement.gamma and \"checkpoint\": \"" + om.path + "\", or \"model_id\": \"" +
                om.model_id + "\"" + (step ? " with \"step\": " + std::to_string(*step) + " or" : "") + " without a step)");
  return *rec;
}

nlohmann::json versions() {
  return {{"ropelab", ROPELAB_VERSION},
          {"libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR)}};
}

namespace {
// Adds to `record` the fields of `shared` it lacks, into nested objects too.
void add_missing(nlohmann::json& record, const nlohmann::json& shared) {
  for (auto it = shared.begin(); it != shared.end(); ++it) {
    if (!record.contains(it.key())) record[it.key()] = it.value();
    else if (record[it.key()].is_object() && it.value().is_object()) add_missing(record[it.key()], it.value());
  }
}
}  // namespace

void RecordWriter::write(nlohmann::json record) {
  add_missing(record, shared_);
  if (!out_.empty()) io::append_jsonl(out_, record);
  records_.push_back(std::move(record));
}

}  // namespace ropelab::eval
