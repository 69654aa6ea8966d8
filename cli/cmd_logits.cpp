// `ropelab logits --hf DIR | --ckpt C (--ids 1,2,3 | --length N [--seed S])
// [--scaling M] [--kv-cache] [--out FILE]`: a model's logits on given ids, as
// JSON, in one pass or token by token through the KV cache, so any model,
// scaled or not, can be compared with another implementation.
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "common/error.h"
#include "common/io.h"
#include "eval/evaluation.h"
#include "model/rope_scaling.h"

namespace ropelab::cli {
namespace {

struct LogitsOptions {
  std::vector<int64_t> ids;
  int64_t length = 0;
  uint64_t seed = 0;
  std::string scaling = "none";
  bool kv_cache = false;
  std::string out;
  eval::OpenOptions open;
};

// The ids to run: as given, or `length` drawn uniformly from the vocabulary with `seed`.
std::vector<int64_t> input_ids(const LogitsOptions& o, int64_t vocab) {
  if (!o.ids.empty()) {
    for (size_t i = 0; i < o.ids.size(); ++i)
      if (o.ids[i] < 0 || o.ids[i] >= vocab)
        throw Error("logits: --ids item " + std::to_string(i + 1) + " (" + std::to_string(o.ids[i]) +
                    ") is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    return o.ids;
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  auto t = at::randint(vocab, {o.length}, gen, at::TensorOptions().dtype(at::kLong));
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + o.length);
}

nlohmann::json run(const std::string& path, const LogitsOptions& o) {
  if (o.ids.empty() == (o.length == 0)) throw Error("logits: give exactly one of --ids or --length");
  auto om = eval::open_model(path, o.open);
  auto& m = *om.model;
  const auto ids = input_ids(o, m.cfg.vocab_size);
  const auto methods = model::parse_scaling_methods(o.scaling);
  if (methods.size() != 1) throw Error("logits: --scaling takes one method, not a list or sweep");
  const auto& method = methods[0];
  const int64_t T = int64_t(ids.size());
  torch::NoGradGuard no_grad;
  // The method at the forward's length (dynamic NTK and longrope change with it), as the model's own would.
  auto settings_at = [&](int64_t seq_len) { return model::scaling_settings(method, m.cfg, seq_len, T); };
  const auto idx = at::tensor(ids, at::kLong).view({1, T});
  at::Tensor logits;
  if (!o.kv_cache) {
    const auto s = settings_at(T);
    logits = m.forward(idx, nullptr, nullptr, &s)[0];
  } else {
    model::KVCache cache;
    std::vector<at::Tensor> rows;
    for (int64_t t = 0; t < T; ++t) {
      const auto s = settings_at(t + 1);
      rows.push_back(m.forward(idx.narrow(1, t, 1), &cache, nullptr, &s)[0][0]);
    }
    logits = at::stack(rows);
  }
  logits = logits.to(at::kDouble).contiguous();
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t t = 0; t < T; ++t) {
    const double* p = logits[t].data_ptr<double>();
    rows.push_back(std::vector<double>(p, p + logits.size(1)));
  }
  nlohmann::json j = om.provenance();
  j.update({{"kind", "logits"}, {"arch", om.arch()}, {"scaling", method.label()}, {"kv_cache", o.kv_cache},
            {"dtype", std::string(c10::toString(m.tok_emb->weight.scalar_type()))}, {"ids", ids}, {"logits", rows}});
  return j;
}

}  // namespace

void add_logits_command(CLI::App& root) {
  auto* cmd = root.add_subcommand("logits", "a model's logits on given ids as JSON (one pass or through the KV cache)");
  auto path = std::make_shared<std::string>();
  auto o = std::make_shared<LogitsOptions>();
  o->open.dtype = "float32";
  const auto model = add_model_flags(*cmd, *path, o->open, /*data=*/false);
  auto* ids = cmd->add_option("--ids", o->ids, "token ids, comma separated")->delimiter(',');
  cmd->add_option("--length", o->length, "that many ids drawn uniformly from the vocabulary")->excludes(ids)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--seed", o->seed, "seed of the drawn ids")->capture_default_str();
  cmd->add_option("--scaling", o->scaling, "one RoPE method applied at evaluation (ropelab rope list; as eval niah --scaling)")
      ->capture_default_str();
  cmd->add_flag("--kv-cache", o->kv_cache, "feed the ids one at a time through the KV cache");
  cmd->add_option("--out", o->out, "write the JSON here (default: stdout)");
  cmd->callback([=] {
    model.require_one();
    const auto j = run(*path, *o);
    if (o->out.empty()) std::cout << j.dump() << "\n";
    else io::write_json_atomic(o->out, j);
  });
}

}  // namespace ropelab::cli
