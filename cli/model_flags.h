// --ckpt FILE or --hf DIR, and how a Hugging Face directory is opened
// (--model-id, --dtype, --data-dir): the same flags on every command that
// measures a model (eval gamma, eval niah, eval kv, export hf).
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "common/error.h"
#include "eval/evaluation.h"

namespace ropelab::cli {

struct ModelFlags {
  CLI::Option* ckpt = nullptr;
  CLI::Option* hf = nullptr;
  // Throws Error unless exactly one of --ckpt / --hf (or one of `others`) was given.
  void require_one(const std::string& others = "") const {
    const size_t given = ckpt->count() + hf->count();
    if (others.empty() && given != 1) throw Error("give exactly one of --ckpt or --hf");
    if (given > 1) throw Error("give only one of --ckpt or --hf");
  }
};

inline ModelFlags add_model_flags(CLI::App& cmd, std::string& path, eval::OpenOptions& open, bool data = true) {
  ModelFlags f;
  f.ckpt = cmd.add_option("--ckpt", path, "checkpoint file");
  f.hf = cmd.add_option("--hf", path, "Hugging Face model directory (config.json, safetensors, tokenizer)")
             ->check(CLI::ExistingDirectory);
  f.ckpt->excludes(f.hf);
  cmd.add_option("--model-id", open.model_id, "--hf: the records' model_id (default: the directory's name)");
  cmd.add_option("--dtype", open.dtype, "--hf: auto (the weights' own), float32, bfloat16 or float16")
      ->capture_default_str();
  if (data)
    cmd.add_option("--data-dir", open.data_dir,
                   "--hf: held-out text in the model's tokenizer (prepared from the embedded corpus when missing; "
                   "default runs/data/hf-NAME)");
  return f;
}

}  // namespace ropelab::cli
