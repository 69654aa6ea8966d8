#include "train/train_config.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/config_fields.h"
#include "common/error.h"
#include "data/passkey.h"
#include "train/schedule.h"

namespace ropelab::train {

namespace {
using C = TrainConfig;
using F = config::Field<C>;
constexpr bool kOptional = true;  // absent from the config.json of runs made before the field existed
}  // namespace

const std::vector<config::Field<TrainConfig>>& train_fields() {
  static const std::vector<F> fields = {
      // key, flag, member, flag group, help, {rule, what it says}[, optional in older config.json]
      {"data_dir", "data-dir", &C::data_dir, "data", "prepared data directory (prepared first if missing)"},
      {"data_inputs", "data-input", &C::data_inputs, "data", "text sources for preparing (default: embedded corpus)"},
      {"vocab_size", "vocab-size", &C::vocab_size, "data", "tokenizer vocabulary when preparing"},
      {"tokenizer_type", "tokenizer-type", &C::tokenizer_type, "data", "bpe or unigram",
       {[](const C& c) { return c.tokenizer_type == "bpe" || c.tokenizer_type == "unigram"; }, "must be bpe or unigram"}},
      {"data_mix", "data-mix", &C::data_mix, "data", "passkey:F: that fraction of windows become retrieval examples",
       {[](const C& c) { return data::DataMix::parse(c.data_mix), true; }}, kOptional},
      {"init_from", "init-from", &C::init_from, "model",
       "start from a Hugging Face directory's weights (export hf layout); model flags default to its config", {}, kOptional},
      {"max_steps", "max-steps", &C::max_steps, "optimisation", "", {[](const C& c) { return c.max_steps > 0; }, "must be > 0"}},
      {"batch_size", "batch-size", &C::batch_size, "optimisation", "sequences per micro-batch",
       {[](const C& c) { return c.batch_size > 0; }, "must be > 0"}},
      {"grad_accum", "grad-accum", &C::grad_accum, "optimisation", "micro-batches per step",
       {[](const C& c) { return c.grad_accum > 0; }, "must be > 0"}},
      {"lr", "lr", &C::lr, "optimisation", "peak learning rate", {[](const C& c) { return c.lr > 0; }, "must be > 0"}},
      {"min_lr", "min-lr", &C::min_lr, "optimisation", "floor of the cosine decay",
       {[](const C& c) { return c.min_lr >= 0 && c.min_lr <= c.lr; }, "must be >= 0 and <= lr"}},
      {"warmup_steps", "warmup-steps", &C::warmup_steps, "optimisation", "",
       {[](const C& c) { return c.warmup_steps >= 0; }, "must be >= 0"}},
      {"weight_decay", "weight-decay", &C::weight_decay, "optimisation", "",
       {[](const C& c) { return c.weight_decay >= 0; }, "must be >= 0"}},
      {"beta1", "beta1", &C::beta1, "optimisation"},
      {"beta2", "beta2", &C::beta2, "optimisation"},
      {"grad_clip", "grad-clip", &C::grad_clip, "optimisation", "0 = off",
       {[](const C& c) { return c.grad_clip >= 0; }, "must be >= 0"}},
      {"seed", "seed", &C::seed, "optimisation"},
      {"eval_every", "eval-every", &C::eval_every, "run", "validation loss every N steps",
       {[](const C& c) { return c.eval_every > 0; }, "must be > 0"}},
      {"eval_batches", "eval-batches", &C::eval_batches, "run", "", {[](const C& c) { return c.eval_batches > 0; }, "must be > 0"}},
      {"checkpoints", "checkpoints", &C::checkpoints, "run", "log2+every:N | every:N | list:A,B,...",
       {[](const C& c) { return CheckpointSchedule::parse(c.checkpoints), true; }}},
      {"log_every", "log-every", &C::log_every, "run", "log line every N steps when not on a terminal",
       {[](const C& c) { return c.log_every > 0; }, "must be > 0"}},
      {"device", "device", &C::device, "run", "cpu or cuda",
       {[](const C& c) { return c.device == "cpu" || c.device == "cuda"; }, "must be cpu or cuda"}},
      {"threads", "threads", &C::threads, "run", "torch CPU threads (0 = default)"},
      {"dist_timeout_s", "dist-timeout", &C::dist_timeout_s, "run", "seconds a collective may wait for the other ranks",
       {[](const C& c) { return c.dist_timeout_s > 0; }, "must be > 0"}, kOptional},
      {"dist_bucket_mb", "dist-bucket-mb", &C::dist_bucket_mb, "run",
       "gradient all-reduce bucket (MB), overlapped with backward", {[](const C& c) { return c.dist_bucket_mb > 0; }, "must be > 0"},
       kOptional},
      {"autocast", "autocast", &C::autocast, "speed", "auto (bf16 on CUDA, off on the CPU), bf16 or off",
       {[](const C& c) { return c.autocast == "auto" || c.autocast == "bf16" || c.autocast == "off"; },
        "must be auto, bf16 or off"}, kOptional},
      {"fused_adamw", "fused-adamw", &C::fused_adamw, "speed", "one fused AdamW kernel where libtorch has it", {},
       kOptional},
      {"ce_chunk", "ce-chunk", &C::ce_chunk, "speed",
       "rows per chunk of the fused LM head + cross-entropy (-1: 4096 on CUDA, off on the CPU; 0: off)",
       {[](const C& c) { return c.ce_chunk >= -1; }, "must be -1, 0 or a row count"}, kOptional},
      {"cuda_graph", "cuda-graph", &C::cuda_graph, "speed", "replay the step as one CUDA graph (CUDA, 1 rank, grad-accum 1)",
       {}, kOptional},
      {"profile_steps", "profile-steps", &C::profile_steps, "speed",
       "A:B: record an op-level profile of steps A..B (first step 1) into RUN/profile.json (a Chrome trace; "
       "bench/profile_breakdown.py sums it by kind)",
       {[](const C& c) { return c.profile_steps.empty() || parse_step_range(c.profile_steps).has_value(); },
        "must be A:B with 1 <= A <= B"},
       kOptional},
      {"fault_nan_step", "fault-nan-step", &C::fault_nan_step, "run", "testing: treat the loss at this step as NaN"},
      {"fault_kill_at", "fault-kill-at", &C::fault_kill_at, "run",
       "testing: RANK:STEP[:TERM], that rank kills itself (SIGKILL) or sends itself SIGTERM",
       {[](const C& c) { return c.fault_kill_at.empty() || parse_fault_kill(c.fault_kill_at).has_value(); },
        "must be RANK:STEP or RANK:STEP:TERM"},
       kOptional},
      {"world_size", nullptr, &C::world_size, "", "", {}, kOptional},  // set by the trainer
  };
  return fields;
}

std::string TrainConfig::autocast_on(const std::string& dev) const {
  if (autocast == "auto") return dev == "cuda" ? "bf16" : "off";
  return autocast;
}

int64_t TrainConfig::ce_chunk_on(const std::string& dev) const {
  if (ce_chunk == -1) return dev == "cuda" ? 4096 : 0;
  return ce_chunk;
}

void TrainConfig::validate() const {
  config::validate(*this, train_fields(), "train config");
  model.resolved();
}

nlohmann::json to_json(const TrainConfig& c) {
  auto j = config::to_json(c, train_fields());
  j["model"] = model::to_json(c.model);
  return j;
}

TrainConfig train_config_from_json(const nlohmann::json& j) {
  TrainConfig c;
  config::from_json(j, c, train_fields(), "train config");
  try {
    c.model = model::model_config_from_json(j.at("model"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("train config: missing or mistyped field (") + e.what() + ")");
  }
  c.validate();
  return c;
}

std::optional<FaultKill> parse_fault_kill(const std::string& spec) {
  FaultKill k;
  char sig[8] = "";
  long rank = -1, step = -1;
  const int got = std::sscanf(spec.c_str(), "%ld:%ld:%7s", &rank, &step, sig);
  if (got < 2 || (got == 3 && std::string(sig) != "TERM")) return std::nullopt;
  k.rank = rank;
  k.step = step;
  k.term = got == 3;
  return k;
}

std::optional<StepRange> parse_step_range(const std::string& spec) {
  long first = 0, last = 0;
  int used = 0;
  if (std::sscanf(spec.c_str(), "%ld:%ld%n", &first, &last, &used) != 2 || used != int(spec.size())) return std::nullopt;
  if (first < 1 || last < first) return std::nullopt;
  return StepRange{first, last};
}

}  // namespace ropelab::train
