#include "fuzz/targets.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/recipe.h"
#include "common/error.h"
#include "common/io.h"
#include "common/safetensors.h"
#include "data/bpe_tokenizer.h"
#include "data/shard.h"
#include "theory/decay_input.h"
#include "theory/fit.h"
#include "model/hf_config.h"
#include "study/pilot.h"
#include "common/run_dir.h"

namespace ropelab::fuzz {
namespace {

// One scratch directory per process, under $TMPDIR; each input overwrites the same files.
const std::string& scratch() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/ropelab-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) std::abort();
    return pattern;
  }();
  static const bool cleanup = (std::atexit([] { std::error_code ec; std::filesystem::remove_all(scratch(), ec); }), true);
  (void)cleanup;
  return dir;
}

std::string put(const std::string& name, const std::string& bytes) {
  const std::string path = scratch() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  out.close();
  if (!out) std::abort();
  return path;
}

std::string last_path;  // the file the current input was written to, for the message check

// safetensors (model.safetensors downloaded from a hub, or --init-from): the
// header and every tensor span; a tensor read must hold exactly what its shape needs.
void run_safetensors(const std::string& bytes) {
  last_path = put("model.safetensors", bytes);
  const auto f = safetensors::read(last_path);
  for (const auto& [name, t] : f.tensors) {
    int64_t n = safetensors::dtype_size(t.dtype);
    for (int64_t s : t.shape) n *= s;
    if (uint64_t(n) != t.bytes.size()) std::abort();
  }
}

// Token shards, ropelab's and llm.c's: open, then touch the first and last
// token and scan them all (what the loader and `data` checks do).
void run_shard(const std::string& bytes) {
  last_path = put("shard.bin", bytes);
  data::Shard s(last_path);
  if (s.size() == 0) return;
  volatile uint32_t sink = s.at(0) + s.at(s.size() - 1) + s.max_token();
  int64_t window[16];
  const uint64_t n = std::min<uint64_t>(16, s.size());
  s.copy(s.size() - n, n, window);
  (void)sink;
}

// RUN_DIR/checkpoints/manifest.json of a run that may have been cut short.
void run_manifest(const std::string& bytes) {
  static const bool made = (io::make_dirs(scratch() + "/run/checkpoints"), true);
  (void)made;
  last_path = put("run/checkpoints/manifest.json", bytes);
  rundir::read_manifest(last_path.substr(0, last_path.size() - std::string("/checkpoints/manifest.json").size()));
}

// A train recipe (TOML through CLI11) applied to flags of each type `ropelab
// train` has, as cmd_train.cpp does.
void run_recipe(const std::string& bytes) {
  last_path = put("recipe.toml", bytes);
  // Every `ropelab train` flag, by the type cmd_train.cpp binds it to.
  static const char* strings[] = {"out", "data-dir", "tokenizer-type", "data-mix", "norm", "mlp", "init-from",
                                  "checkpoints", "device", "fault-kill-at"};
  static const char* ints[] = {"vocab-size", "d-model", "n-layers", "n-heads", "n-kv-heads", "d-head",
                               "d-ff", "T-train", "max-steps", "batch-size", "grad-accum", "warmup-steps",
                               "eval-every", "eval-batches", "log-every", "threads", "fault-nan-step", "dist-timeout"};
  static const char* reals[] = {"rope-theta", "rotary-fraction", "lr", "min-lr", "weight-decay", "beta1",
                                "beta2", "grad-clip", "dist-bucket-mb"};
  CLI::App cmd{"train"};
  std::string str[std::size(strings)], resume;
  int64_t i64[std::size(ints)] = {};
  double real[std::size(reals)] = {};
  std::vector<std::string> inputs;
  uint64_t seed = 0;
  bool tie = false;
  auto* g = cmd.add_option_group("flags");  // the real command keeps its flags in groups
  for (size_t i = 0; i < std::size(strings); ++i) g->add_option(std::string("--") + strings[i], str[i]);
  for (size_t i = 0; i < std::size(ints); ++i) g->add_option(std::string("--") + ints[i], i64[i]);
  for (size_t i = 0; i < std::size(reals); ++i) g->add_option(std::string("--") + reals[i], real[i]);
  g->add_option("--data-input", inputs);
  g->add_option("--seed", seed);
  g->add_option("--tie-embeddings", tie);
  cmd.add_option("--resume", resume)->configurable(false);
  cli::apply_recipe(cmd, last_path);
}

// A study file (`ropelab pilot --config`); its train-recipe must exist, so
// the seeds name /dev/null.
void run_study(const std::string& bytes) {
  last_path = put("study.toml", bytes);
  study::load_study(last_path);
}

// A(d) curves from the TAF tool (JSON, CLI JSON) or CSV, then the fit that
// `ropelab fit gamma` runs on them. The first byte picks the file extension,
// so detection by extension and by content are both reached.
void run_decay(const std::string& bytes) {
  static const char* ext[] = {".json", ".csv", ".txt"};
  const int pick = bytes.empty() ? 0 : static_cast<unsigned char>(bytes[0]) % 3;
  last_path = put(std::string("curve") + ext[pick], bytes.empty() ? bytes : bytes.substr(1));
  const auto in = decay_input::read_decay_curve(last_path);
  fit::FitOptions opt;
  opt.bootstrap_resamples = 20;  // the resampling loop, not its length, is what could fail
  opt.fit_min_d = 1;
  try {
    fit::fit_gamma(in.curve, opt);
  } catch (const Error& e) {  // fit refusals name no file (cmd_fit adds it): not a reader finding
    return;
  }
}

// A Hugging Face config.json (--init-from, import_hf), then the sizes the
// model would be built with.
void run_hf_config(const std::string& bytes) {
  last_path = put("config.json", bytes);
  const auto c = model::model_config_from_hf(io::read_json(last_path), last_path);
  volatile int64_t p = c.parameter_count();
  (void)p;
}

// JSON Lines (metrics.jsonl, results files resumed after a kill).
void run_jsonl(const std::string& bytes) {
  last_path = put("results.jsonl", bytes);
  io::read_jsonl(last_path);
}

// A Hugging Face tokenizer.json (byte-level BPE), then a round trip of text
// that reaches the added tokens, the pre-tokenizer's classes and the merges,
// and every id back to text.
void run_tokenizer_json(const std::string& bytes) {
  last_path = put("tokenizer.json", bytes);
  const auto tok = data::BpeTokenizer::load(last_path);
  std::vector<int32_t> ids;
  try {
    ids = tok.encode("hello world<|eot|>  it's 2024: caf\xc3\xa9 \xce\xb1\xce\xb2 \xe4\xb8\xad\n\tend", true);
  } catch (const Error&) {  // text refusals (NFC) name no file: not a reader finding
  }
  tok.decode(ids);
  std::vector<int32_t> all;
  for (int32_t id = 0; id < tok.vocab_size() && id < 4096; ++id) {
    try {
      if (tok.token_id(tok.token(id))) all.push_back(id);
    } catch (const Error&) {  // an id between tokens: refused by name, as it should be
    }
  }
  tok.decode(all, true);
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"safetensors", run_safetensors}, {"shard", run_shard},   {"manifest", run_manifest},
      {"recipe", run_recipe},           {"study", run_study},   {"decay", run_decay},
      {"hf_config", run_hf_config},     {"jsonl", run_jsonl},   {"tokenizer_json", run_tokenizer_json},
  };
  return all;
}

const Target& target(const std::string& name) {
  for (const auto& t : targets())
    if (name == t.name) return t;
  std::fprintf(stderr, "unknown fuzz target %s\n", name.c_str());
  std::abort();
}

std::string run_one(const Target& t, const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  last_path.clear();
  try {
    t.run(bytes);
  } catch (const Error& e) {
    const std::string msg = e.what();
    // One line a researcher can act on, naming the file.
    const std::string file = last_path.substr(last_path.rfind('/') + 1);
    if (msg.find('\n') != std::string::npos || msg.find(file) == std::string::npos) {
      std::fprintf(stderr, "fuzz %s: the refusal is not one line naming %s:\n%s\n", t.name, file.c_str(), msg.c_str());
      std::abort();
    }
    return msg.empty() ? "(empty message)" : msg;
  }
  return "";
}

}  // namespace ropelab::fuzz
