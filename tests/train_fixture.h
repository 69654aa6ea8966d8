// A tiny prepared corpus and a tiny training config, for the trainer tests.
#pragma once
#include "data/prepare.h"
#include "test_util.h"
#include "train/train_config.h"

namespace ropelab::test {

// Prepares (once per directory) 40 synthetic documents with a 300-piece tokenizer.
inline std::string tiny_data(const std::string& dir) {
  const std::string out = dir + "/data";
  if (std::filesystem::exists(out + "/meta.json")) return out;
  std::filesystem::create_directories(dir + "/text");
  for (int i = 0; i < 40; ++i)
    write_text(dir + "/text/doc" + std::to_string(100 + i) + ".txt", synthetic_text(120, 1 + i));
  data::PrepareOptions o;
  o.inputs = {dir + "/text"};
  o.tokenizer.vocab_size = 300;
  o.val_fraction = 0.1;
  o.out_dir = out;
  data::prepare_data(o);
  return out;
}

inline train::TrainConfig tiny_config(const std::string& data_dir) {
  train::TrainConfig c;
  c.data_dir = data_dir;
  c.model.d_model = 32; c.model.n_layers = 2; c.model.n_heads = 2; c.model.T_train = 32;
  c.batch_size = 4; c.max_steps = 60; c.lr = 3e-3; c.min_lr = 3e-4; c.warmup_steps = 5;
  c.eval_every = 20; c.eval_batches = 2; c.checkpoints = "every:20"; c.log_every = 1000; c.threads = 1;
  return c;
}

// The same config as command-line flags, for tests that run the binary.
inline std::string tiny_flags(const std::string& data_dir) {
  return "--data-dir " + data_dir +
         " --d-model 32 --n-layers 2 --n-heads 2 --T-train 32 --lr 3e-3 --warmup-steps 5"
         " --eval-every 20 --eval-batches 2 --log-every 1000 --threads 1";
}

}  // namespace ropelab::test
