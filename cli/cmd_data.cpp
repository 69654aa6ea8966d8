#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "data/prepare.h"

namespace ropelab::cli {

void add_data_command(CLI::App& root) {
  auto* data = root.add_subcommand("data", "prepare token shards from text");
  data->require_subcommand(1);
  auto* prep = data->add_subcommand("prepare", "text -> SentencePiece tokenizer -> token shards + meta.json");
  auto opt = std::make_shared<data::PrepareOptions>();
  prep->add_option("--input", opt->inputs, ".txt/.jsonl files or folders (default: the embedded corpus)");
  prep->add_option("--text-field", opt->text_field, "JSON field holding the text in .jsonl files")->capture_default_str();
  prep->add_option("--vocab-size", opt->tokenizer.vocab_size, "tokenizer vocabulary size")->capture_default_str();
  prep->add_option("--tokenizer-type", opt->tokenizer.model_type, "bpe or unigram")
      ->check(CLI::IsMember({"bpe", "unigram"}))->capture_default_str();
  prep->add_option("--tokenizer", opt->tokenizer_path, "reuse this SentencePiece .model instead of training one")
      ->check(CLI::ExistingFile);
  prep->add_option("--val-fraction", opt->val_fraction, "share of documents held out")->capture_default_str();
  prep->add_option("--out", opt->out_dir, "output directory (must not exist)")->required();
  prep->callback([opt] { data::prepare_data(*opt); });
}

}  // namespace ropelab::cli
