// One way for an evaluation (`eval gamma`, `eval niah`, `eval kv`) to open
// the model it measures and to write its records.
//
// Record layout: each record holds its own fields, then the shared ones of
// the model it measured (model_id, checkpoint, step, versions, plus any an
// evaluation adds for all its records). A shared field never overwrites a
// record's own. The software versions are versions(), under "versions".
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace ropelab::eval {

// A model to evaluate: a ropelab checkpoint today (a Hugging Face directory
// later), in eval mode.
struct OpenedModel {
  model::Transformer model{nullptr};
  nlohmann::json state;  // the checkpoint's: "config" (the run's TrainConfig), "step", "tokens_seen", "data"
  std::string path;      // as given
  std::string model_id;  // "ropelab:RUN" for RUN/checkpoints/step_X.pt

  std::string data_dir() const;  // the prepared data the run trained on
  // model_id, checkpoint (the path), step and versions: what every record of it carries.
  nlohmann::json provenance() const;
};
OpenedModel open_model(const std::string& path);

// ropelab's and libtorch's versions.
nlohmann::json versions();

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
