// One way for an evaluation (`eval gamma`, `eval niah`, `eval kv`) to open
// the model it measures and to write its records.
//
// Record layout: each record holds its own fields, then the shared ones of
// the model it measured (model_id, checkpoint, step, versions, plus any an
// evaluation adds for all its records). A shared field never overwrites a
// record's own (objects merge field by field). The software versions are
// versions(), under "versions"; the build fingerprint of the evaluating
// process (train/fingerprint.h) under ropelab.build, and that of the build
// that wrote the checkpoint under ropelab.train_build (null when unknown).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/prepare.h"
#include "model/transformer.h"

namespace ropelab::eval {

// How a Hugging Face directory is opened (a ropelab checkpoint needs none of it).
struct OpenOptions {
  std::string model_id;        // --model-id; default: the directory's name (its parent's too for stepN/)
  std::string dtype = "auto";  // --dtype: auto (the weights' own), float32, bfloat16, float16
  std::string data_dir;        // --data-dir: held-out text in the model's tokenizer; default runs/data/hf-NAME
};

// A model to evaluate, in eval mode: a ropelab checkpoint or a Hugging Face
// directory (config.json + safetensors, model/hf_format.h).
struct OpenedModel {
  model::Transformer model{nullptr};
  nlohmann::json state;  // the checkpoint's: "config" (the run's TrainConfig), "step", "tokens_seen", "data";
                         // for a HF directory: its config.json under "config", "step" from a stepN name or null
  std::string path;      // as given
  std::string model_id;  // "ropelab:RUN" for RUN/checkpoints/step_X.pt; for HF see OpenOptions
  bool hf = false;
  std::string data_dir_hf;  // HF: where its held-out text is (or will be) prepared

  // The held-out text and tokenizer: the run's prepared data, or for a HF
  // directory the embedded corpus in the model's own tokenizer (prepared on
  // first use into data_dir_hf, and checked to be that tokenizer's after).
  data::PreparedData data() const;
  // The TAF record's arch{}: sizes, θ, rotary share, family / HF architecture.
  nlohmann::json arch() const;
  // model_id, checkpoint (the path), step, versions, ropelab.build and
  // ropelab.train_build: what every record of it carries.
  nlohmann::json provenance() const;
};
// PATH: a checkpoint file, or a directory holding config.json (Hugging Face).
OpenedModel open_model(const std::string& path, const OpenOptions& open = {});
bool is_hf_dir(const std::string& path);
// DIR/tokenizer.json (byte-level BPE) or DIR/tokenizer.model (SentencePiece), or "" when it has neither.
std::string tokenizer_in(const std::string& dir);
// The step a HF folder's name states ("step1000", "checkpoint-500", "global_step20"):
// its trailing digits when the name says step or checkpoint; else -1.
int64_t step_of_folder(const std::string& name);

// ropelab's and libtorch's versions.
nlohmann::json versions();

// Where an evaluation reads a measured γ (--gamma-from FILE, --gamma-protocol P):
// the record of this model in FILE, found as theory/gamma_record.h's
// find_gamma_record does (same checkpoint file, else model_id and step, else a
// model-level record), of protocol P when one is given. Throws Error naming
// the file and what was looked for when none matches.
struct GammaSource {
  std::string file;      // "" = none given
  std::string protocol;  // "taf", "fixed", or "" for any
};
nlohmann::json measured_gamma_record(const OpenedModel& om, const GammaSource& from);

// The records of one evaluation: each gets the shared fields it lacks, is
// appended to `out` (when not "") as it comes, and is kept.
class RecordWriter {
 public:
  RecordWriter(std::string out, nlohmann::json shared) : out_(std::move(out)), shared_(std::move(shared)) {}
  void write(nlohmann::json record);
  nlohmann::json& shared() { return shared_; }
  const std::vector<nlohmann::json>& records() const { return records_; }
  std::vector<nlohmann::json> take() { return std::move(records_); }

 private:
  std::string out_;
  nlohmann::json shared_;
  std::vector<nlohmann::json> records_;
};

}  // namespace ropelab::eval
