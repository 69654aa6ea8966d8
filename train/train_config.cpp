#include "train/train_config.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data/passkey.h"
#include "train/schedule.h"

namespace ropelab::train {

void TrainConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) { if (!ok) throw Error("train config: " + msg); };
  need(max_steps > 0, "max-steps must be > 0");
  need(batch_size > 0 && grad_accum > 0, "batch-size and grad-accum must be > 0");
  need(lr > 0 && min_lr >= 0 && min_lr <= lr, "need 0 <= min-lr <= lr and lr > 0");
  need(warmup_steps >= 0, "warmup-steps must be >= 0");
  need(grad_clip >= 0 && weight_decay >= 0, "grad-clip and weight-decay must be >= 0");
  need(eval_every > 0 && eval_batches > 0 && log_every > 0, "eval-every, eval-batches, log-every must be > 0");
  need(dist_timeout_s > 0, "dist-timeout must be > 0");
  need(dist_bucket_mb > 0, "dist-bucket-mb must be > 0");
  need(device == "cpu" || device == "cuda", "device must be cpu or cuda, got " + device);
  need(tokenizer_type == "bpe" || tokenizer_type == "unigram", "tokenizer must be bpe or unigram");
  CheckpointSchedule::parse(checkpoints);  // throws on a bad spec
  data::DataMix::parse(data_mix);
  model.resolved();
}

nlohmann::json to_json(const TrainConfig& c) {
  return {{"data_dir", c.data_dir}, {"data_inputs", c.data_inputs}, {"vocab_size", c.vocab_size},
          {"tokenizer_type", c.tokenizer_type}, {"data_mix", c.data_mix}, {"model", model::to_json(c.model)},
          {"init_from", c.init_from},
          {"max_steps", c.max_steps}, {"batch_size", c.batch_size}, {"grad_accum", c.grad_accum},
          {"lr", c.lr}, {"min_lr", c.min_lr}, {"warmup_steps", c.warmup_steps},
          {"weight_decay", c.weight_decay}, {"beta1", c.beta1}, {"beta2", c.beta2},
          {"grad_clip", c.grad_clip}, {"seed", c.seed}, {"eval_every", c.eval_every},
          {"eval_batches", c.eval_batches}, {"checkpoints", c.checkpoints}, {"log_every", c.log_every},
          {"device", c.device}, {"threads", c.threads}, {"fault_nan_step", c.fault_nan_step},
          {"world_size", c.world_size}, {"dist_timeout_s", c.dist_timeout_s},
          {"dist_bucket_mb", c.dist_bucket_mb}, {"fault_kill_at", c.fault_kill_at}};
}

TrainConfig train_config_from_json(const nlohmann::json& j) {
  TrainConfig c;
  try {
    c.data_dir = j.at("data_dir"); c.data_inputs = j.at("data_inputs").get<std::vector<std::string>>();
    c.vocab_size = j.at("vocab_size"); c.tokenizer_type = j.at("tokenizer_type");
    c.data_mix = j.value("data_mix", "");
    c.model = model::model_config_from_json(j.at("model"));
    c.init_from = j.value("init_from", "");
    c.max_steps = j.at("max_steps"); c.batch_size = j.at("batch_size"); c.grad_accum = j.at("grad_accum");
    c.lr = j.at("lr"); c.min_lr = j.at("min_lr"); c.warmup_steps = j.at("warmup_steps");
    c.weight_decay = j.at("weight_decay"); c.beta1 = j.at("beta1"); c.beta2 = j.at("beta2");
    c.grad_clip = j.at("grad_clip"); c.seed = j.at("seed"); c.eval_every = j.at("eval_every");
    c.eval_batches = j.at("eval_batches"); c.checkpoints = j.at("checkpoints");
    c.log_every = j.at("log_every"); c.device = j.at("device"); c.threads = j.at("threads");
    c.fault_nan_step = j.at("fault_nan_step");
    c.world_size = j.value("world_size", int64_t(1));
    c.dist_timeout_s = j.value("dist_timeout_s", int64_t(60));
    c.dist_bucket_mb = j.value("dist_bucket_mb", 25.0);
    c.fault_kill_at = j.value("fault_kill_at", "");
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("train config: missing or mistyped field (") + e.what() + ")");
  }
  c.validate();
  return c;
}

}  // namespace ropelab::train
