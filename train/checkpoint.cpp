#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "common/io.h"
#include "train/train_config.h"

namespace ropelab::train {

void save_checkpoint(const std::string& run_dir, int64_t step, int64_t tokens_seen, model::Transformer& m,
                     torch::optim::Optimizer* opt, const nlohmann::json& state) {
  const std::string dir = checkpoints_dir(run_dir);
  io::make_dirs(dir);
  const std::string name = rundir::checkpoint_file_name(step);
  const std::string path = rundir::checkpoint_path(run_dir, name), tmp = io::temp_name(path);

  torch::serialize::OutputArchive archive, model_ar, opt_ar;
  m->save(model_ar);
  archive.write("model", model_ar);
  if (opt) {
    opt->save(opt_ar);
    archive.write("optimizer", opt_ar);
  }
  // RNG state: nothing in the loop draws from it today (windows are hashed
  // from seed and step), but anything that later does resumes exactly.
  archive.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  nlohmann::json full = state;
  full["step"] = step;
  full["tokens_seen"] = tokens_seen;
  // Data position: training windows are a pure function of (seed, step, global sample).
  full["data_position"] = {{"next_step", step}, {"samples_drawn", tokens_seen / std::max<int64_t>(1, state.at("config").at("model").at("T_train").get<int64_t>())}};
  archive.write("state", c10::IValue(full.dump()));
  archive.save_to(tmp);
  io::commit_atomic(tmp, path);

  rundir::add_to_manifest(run_dir, {step, name, tokens_seen});
}

nlohmann::json load_checkpoint(const std::string& path, model::Transformer& m, torch::optim::Optimizer* opt) {
  if (!io::exists(path)) throw Error(path + ": no such checkpoint");
  torch::serialize::InputArchive archive, model_ar, opt_ar;
  try {
    archive.load_from(path);
    archive.read("model", model_ar);
    m->load(model_ar);
    if (opt) {  // resuming training: optimizer and RNG state too
      archive.read("optimizer", opt_ar);
      opt->load(opt_ar);
      at::Tensor rng;
      if (archive.try_read("rng_cpu", rng)) {
        at::Generator gen = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
        gen.set_state(rng);
      }
    }
    c10::IValue state;
    archive.read("state", state);
    return nlohmann::json::parse(state.toStringRef());
  } catch (const c10::Error& e) {
    throw Error(path + ": not a readable ropelab checkpoint (" + e.what_without_backtrace() + ")");
  }
}

LoadedModel load_model(const std::string& ckpt_path) {
  if (!io::exists(ckpt_path)) throw Error(ckpt_path + ": no such checkpoint");
  torch::serialize::InputArchive archive;
  c10::IValue state;
  try {
    archive.load_from(ckpt_path);
    archive.read("state", state);
  } catch (const c10::Error& e) {
    throw Error(ckpt_path + ": not a readable ropelab checkpoint (" + e.what_without_backtrace() + ")");
  }
  LoadedModel out;
  out.state = nlohmann::json::parse(state.toStringRef());
  const auto cfg = train_config_from_json(out.state.at("config"));
  out.model = model::Transformer(cfg.model);
  load_checkpoint(ckpt_path, out.model, nullptr);
  out.model->eval();
  return out;
}

}  // namespace ropelab::train
