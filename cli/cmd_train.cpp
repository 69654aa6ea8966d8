#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/recipe.h"
#include "common/error.h"
#include "common/io.h"
#include "model/hf_format.h"
#include "train/trainer.h"

namespace ropelab::cli {
namespace {

// With --init-from, each model flag not given (on the command line or in the
// recipe) takes the Hugging Face directory's value; given ones must agree
// with it, which the trainer checks when it loads the weights.
void model_from_hf(CLI::App& cmd, model::ModelConfig& m, const std::string& dir) {
  const auto hf = model::model_config_from_hf(io::read_json(dir + "/config.json"), dir + "/config.json");
  auto take = [&](const char* flag, auto& field, const auto& value) {
    if (cmd.get_option(flag)->count() == 0) field = value;
  };
  take("--d-model", m.d_model, hf.d_model);
  take("--n-layers", m.n_layers, hf.n_layers);
  take("--n-heads", m.n_heads, hf.n_heads);
  take("--n-kv-heads", m.n_kv_heads, hf.n_kv_heads);
  take("--d-head", m.d_head, hf.d_head);
  take("--d-ff", m.d_ff, hf.d_ff);
  take("--rope-theta", m.rope_theta, hf.rope_theta);
  take("--rotary-fraction", m.rotary_fraction, hf.rotary_fraction);
  take("--T-train", m.T_train, hf.T_train);
  take("--norm", m.norm, hf.norm);
  take("--mlp", m.mlp, hf.mlp);
  take("--tie-embeddings", m.tie_embeddings, hf.tie_embeddings);
}

}  // namespace

// Every TrainConfig field is a flag, and (without the dashes) a recipe key:
// `ropelab train --config recipes/smoke.toml --max-steps 20` overrides one.
void add_train_command(CLI::App& root) {
  auto* cmd = root.add_subcommand("train", "pretrain a RoPE decoder, keeping a checkpoint trajectory");
  auto recipe = std::make_shared<std::string>();
  cmd->add_option("--config", *recipe, "recipe file (TOML; its keys are the flags below)")->check(CLI::ExistingFile);
  auto c = std::make_shared<train::TrainConfig>();
  auto out = std::make_shared<std::string>();
  auto resume = std::make_shared<std::string>();
  auto& m = c->model;
  cmd->add_option("--out", *out, "run directory to create");
  cmd->add_option("--resume", *resume, "continue this run directory from its newest checkpoint")->configurable(false);

  auto* d = cmd->add_option_group("data");
  d->add_option("--data-dir", c->data_dir, "prepared data directory (prepared first if missing)")->capture_default_str();
  d->add_option("--data-input", c->data_inputs, "text sources for preparing (default: embedded corpus)");
  d->add_option("--vocab-size", c->vocab_size, "tokenizer vocabulary when preparing")->capture_default_str();
  d->add_option("--tokenizer-type", c->tokenizer_type, "bpe or unigram")->capture_default_str();
  d->add_option("--data-mix", c->data_mix, "passkey:F: that fraction of windows become retrieval examples");

  auto* a = cmd->add_option_group("model");
  a->add_option("--d-model", m.d_model)->capture_default_str();
  a->add_option("--n-layers", m.n_layers)->capture_default_str();
  a->add_option("--n-heads", m.n_heads)->capture_default_str();
  a->add_option("--n-kv-heads", m.n_kv_heads, "0 = n-heads")->capture_default_str();
  a->add_option("--d-head", m.d_head, "0 = d-model / n-heads")->capture_default_str();
  a->add_option("--d-ff", m.d_ff, "0 = derived from d-model and mlp")->capture_default_str();
  a->add_option("--rope-theta", m.rope_theta, "RoPE base θ")->capture_default_str();
  a->add_option("--rotary-fraction", m.rotary_fraction, "share of each head that rotates")->capture_default_str();
  a->add_option("--T-train", m.T_train, "training sequence length")->capture_default_str();
  a->add_option("--norm", m.norm, "rmsnorm or layernorm")->capture_default_str();
  a->add_option("--mlp", m.mlp, "swiglu or gelu")->capture_default_str();
  a->add_option("--tie-embeddings", m.tie_embeddings, "share embedding and LM head")->capture_default_str();
  a->add_option("--init-from", c->init_from,
                "start from a Hugging Face directory's weights (export hf layout); model flags default to its config")
      ->check(CLI::ExistingDirectory);

  auto* o = cmd->add_option_group("optimisation");
  o->add_option("--max-steps", c->max_steps)->capture_default_str();
  o->add_option("--batch-size", c->batch_size, "sequences per micro-batch")->capture_default_str();
  o->add_option("--grad-accum", c->grad_accum, "micro-batches per step")->capture_default_str();
  o->add_option("--lr", c->lr, "peak learning rate")->capture_default_str();
  o->add_option("--min-lr", c->min_lr, "floor of the cosine decay")->capture_default_str();
  o->add_option("--warmup-steps", c->warmup_steps)->capture_default_str();
  o->add_option("--weight-decay", c->weight_decay)->capture_default_str();
  o->add_option("--beta1", c->beta1)->capture_default_str();
  o->add_option("--beta2", c->beta2)->capture_default_str();
  o->add_option("--grad-clip", c->grad_clip, "0 = off")->capture_default_str();
  o->add_option("--seed", c->seed)->capture_default_str();

  auto* r = cmd->add_option_group("run");
  r->add_option("--eval-every", c->eval_every, "validation loss every N steps")->capture_default_str();
  r->add_option("--eval-batches", c->eval_batches)->capture_default_str();
  r->add_option("--checkpoints", c->checkpoints, "log2+every:N | every:N | list:A,B,...")->capture_default_str();
  r->add_option("--log-every", c->log_every, "log line every N steps when not on a terminal")->capture_default_str();
  r->add_option("--device", c->device, "cpu or cuda")->capture_default_str();
  r->add_option("--threads", c->threads, "torch CPU threads (0 = default)")->capture_default_str();
  r->add_option("--dist-timeout", c->dist_timeout_s, "seconds a collective may wait for the other ranks")
      ->capture_default_str();
  r->add_option("--dist-bucket-mb", c->dist_bucket_mb, "gradient all-reduce bucket (MB), overlapped with backward")
      ->capture_default_str();
  r->add_option("--fault-nan-step", c->fault_nan_step, "testing: treat the loss at this step as NaN");
  r->add_option("--fault-kill-at", c->fault_kill_at, "testing: RANK:STEP[:TERM], that rank kills itself (SIGKILL) or sends itself SIGTERM");

  cmd->callback([c, out, resume, recipe, cmd] {
    if (!recipe->empty()) apply_recipe(*cmd, *recipe);
    if (!c->init_from.empty()) model_from_hf(*cmd, c->model, c->init_from);
    if (!resume->empty()) {
      if (!out->empty()) throw Error("give either --out (new run) or --resume (existing run), not both");
      const auto* ms = cmd->get_option("--max-steps");
      if (train::train_resume(*resume, ms->count() > 0 ? c->max_steps : 0).interrupted) throw CLI::RuntimeError(130);
      return;
    }
    if (out->empty()) throw Error("--out RUN_DIR is required for a new run (or --resume RUN_DIR)");
    if (train::train_new(*c, *out).interrupted) throw CLI::RuntimeError(130);
  });
}

}  // namespace ropelab::cli
