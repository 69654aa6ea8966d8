// `ropelab data prepare`: text -> tokenizer -> token shards + meta.json.
// The output directory appears only when complete (built under a temporary
// name, then renamed), so a prepared directory is never half-written.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace ropelab::data {

struct PrepareOptions {
  std::vector<std::string> inputs;  // empty: the embedded corpus
  std::string text_field = "text";
  TokenizerSpec tokenizer;
  std::string tokenizer_path;       // reuse this model instead of training one
  double val_fraction = 0.02;       // share of documents held out
  uint64_t shard_tokens = 100000000;
  std::string out_dir;
};

// Returns meta.json's content. Throws Error if out_dir already exists.
nlohmann::json prepare_data(const PrepareOptions& opt);

// The shards a prepared directory lists in its meta.json.
struct PreparedData {
  std::string dir;
  std::vector<std::string> train_shards, val_shards;
  std::string tokenizer_path;
  uint64_t vocab_size = 0;
  nlohmann::json meta;
};
PreparedData load_prepared(const std::string& dir);

}  // namespace ropelab::data
