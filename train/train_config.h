// Everything a training run is configured by; written to RUN_DIR/config.json
// and restored from there by --resume.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace ropelab::train {

// Adding a field: its member below, and one line in train_fields()
// (train/train_config.cpp); the JSON, the flag, the recipe key and its
// check follow from that line.

struct TrainConfig {
  // data: a prepared directory; prepared first from the inputs (or the
  // embedded corpus when there are none) if it does not exist yet.
  std::string data_dir = "runs/data/embedded-2k";
  std::vector<std::string> data_inputs;
  int64_t vocab_size = 2048;          // tokenizer size when preparing
  std::string tokenizer_type = "bpe";
  std::string data_mix;               // "" or "passkey:F": that fraction of windows become retrieval examples

  model::ModelConfig model;           // model.vocab_size comes from the data
  std::string init_from;              // a Hugging Face directory (export hf) whose weights start the run

  int64_t max_steps = 200;
  int64_t batch_size = 8;             // sequences per micro-batch (per rank)
  int64_t grad_accum = 1;             // micro-batches per optimizer step
  double lr = 3e-3, min_lr = 3e-4;    // peak, and floor of the cosine decay
  int64_t warmup_steps = 20;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, grad_clip = 1.0;
  uint64_t seed = 1337;               // init and data order

  int64_t eval_every = 50;            // validation loss every N steps (and at the end)
  int64_t eval_batches = 4;
  std::string checkpoints = "log2+every:100";
  int64_t log_every = 10;
  std::string device = "cpu";         // "cpu" or "cuda"
  int64_t threads = 0;                // torch intra-op threads; 0 = torch's default
  int64_t fault_nan_step = -1;        // fault injection for tests: loss reads NaN at this step
  std::string fault_kill_at;          // fault injection for tests: "RANK:STEP[:TERM]" -> that rank SIGKILLs (or SIGTERMs) itself
  int64_t world_size = 1;             // ranks the run was started with (set by the trainer)
  int64_t dist_timeout_s = 60;        // a collective waiting longer than this fails
  double dist_bucket_mb = 25;         // gradient all-reduce bucket size (overlapped with backward)
  // The speed pieces of a step, each with its own switch so each is measured alone:
  std::string autocast = "auto";      // auto: bf16 on CUDA, off on the CPU | bf16 | off
  bool fused_adamw = true;            // at::_fused_adamw_ where this libtorch has it for the device
  int64_t ce_chunk = -1;              // rows per chunk of the fused head + cross-entropy; -1: 4096 on CUDA, off on the CPU; 0: off
  bool cuda_graph = true;             // capture the step as one CUDA graph (CUDA, one rank, grad_accum 1)
  std::string profile_steps;          // "A:B": an op-level profile of steps A..B (first step 1) into RUN/profile.json

  std::string autocast_on(const std::string& dev) const;  // "bf16" or "off" for that device
  int64_t ce_chunk_on(const std::string& dev) const;      // the chunk (0: off) for that device

  void validate() const;              // throws Error naming the field
  // Tokens per optimizer step over all ranks.
  int64_t tokens_per_step() const { return world_size * batch_size * grad_accum * model.T_train; }
};

// Each field once (the model's are model::model_fields()): JSON key, flag
// and recipe key, member, flag group, help and rule.
const std::vector<config::Field<TrainConfig>>& train_fields();

nlohmann::json to_json(const TrainConfig& c);
TrainConfig train_config_from_json(const nlohmann::json& j);  // validated; older runs' missing fields keep defaults

// --fault-kill-at RANK:STEP[:TERM]: that rank SIGKILLs itself at that step (SIGTERM with :TERM).
struct FaultKill {
  int64_t rank = -1, step = -1;
  bool term = false;
};
std::optional<FaultKill> parse_fault_kill(const std::string& spec);  // nothing when malformed
struct StepRange {
  int64_t first, last;  // steps counted from 1, first <= last
};
std::optional<StepRange> parse_step_range(const std::string& spec);  // "A:B"; nothing when malformed

}  // namespace ropelab::train
