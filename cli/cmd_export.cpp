// `ropelab export hf --ckpt PATH --out DIR`: a checkpoint in the Hugging Face
// layout of its architecture (model/hf_format.h), with the run's tokenizer.
// `--hf DIR` re-exports a Hugging Face directory (e.g. in another --dtype),
// biases and parallel residual included, with its own tokenizer.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "common/error.h"
#include "common/io.h"
#include "data/prepare.h"
#include "eval/evaluation.h"
#include "model/hf_format.h"
#include "train/checkpoint.h"

namespace ropelab::cli {

void add_export_command(CLI::App& root) {
  auto* ex = root.add_subcommand("export", "write a checkpoint in another framework's layout");
  ex->require_subcommand(1);
  auto* hf = ex->add_subcommand("hf", "Hugging Face layout: config.json, model.safetensors, tokenizer "
                                      "(LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, MistralForCausalLM "
                                      "or GPTNeoXForCausalLM)");
  auto ckpt = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto no_tokenizer = std::make_shared<bool>(false);
  auto open = std::make_shared<eval::OpenOptions>();
  open->dtype = "float32";
  const auto model = add_model_flags(*hf, *ckpt, *open, /*data=*/false);
  hf->add_option("--out", *out, "directory to create")->required();
  hf->add_flag("--no-tokenizer", *no_tokenizer, "export the weights alone (when the run's data directory is gone)");
  hf->callback([=] {
    model.require_one();
    if (model.hf->count() > 0) {
      auto m = model::import_hf(*ckpt, open->dtype, /*to_compute=*/false);
      const std::string tokenizer = *no_tokenizer ? "" : eval::tokenizer_in(*ckpt);
      model::export_hf(*m, *out, tokenizer);
      std::cout << "exported " << *ckpt << " as " << model::hf_architecture(m->cfg) << " to " << *out
                << (tokenizer.empty() ? " (no tokenizer)" : "") << "\n";
      return;
    }
    auto loaded = train::load_model(*ckpt);
    std::string tokenizer;
    if (!*no_tokenizer) {
      const std::string data_dir = loaded.state.at("data").at("dir").get<std::string>();
      if (!io::exists(data_dir + "/meta.json"))
        throw Error("export hf: the run's data directory " + data_dir +
                    " (which holds its tokenizer) is missing; restore it, or pass --no-tokenizer");
      tokenizer = data::load_prepared(data_dir).tokenizer_path;
      if (tokenizer.empty())
        throw Error("export hf: " + data_dir + " has no tokenizer (llm.c shards?); pass --no-tokenizer");
    }
    model::export_hf(*loaded.model, *out, tokenizer);
    std::cout << "exported " << *ckpt << " as " << model::hf_architecture(loaded.model->cfg) << " to " << *out
              << (tokenizer.empty() ? " (no tokenizer)" : "") << "\n";
  });
}

}  // namespace ropelab::cli
