#include <CLI/CLI.hpp>

#include <map>

#include "cli/commands.h"
#include "cli/config_flags.h"
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
  take_unset_flags(cmd, m, hf, model::model_fields());
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

  // Every field of the train and model configs (train_fields(), model_fields()),
  // grouped as they declare: data, model, optimisation, run.
  std::map<std::string, CLI::Option_group*> groups;
  add_config_flags(*cmd, *c, train::train_fields(), groups);
  add_config_flags(*cmd, m, model::model_fields(), groups);
  cmd->get_option("--init-from")->check(CLI::ExistingDirectory);

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
