#include "train/trainer.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>
#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
#include <ATen/autocast_mode.h>
#endif

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "common/error.h"
#include "common/io.h"
#include "common/progress.h"
#include "data/loader.h"
#include "data/passkey.h"
#include "model/hf_format.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/schedule.h"

namespace ropelab::train {
namespace {

std::atomic<int> g_stop_signal{0};
void on_signal(int sig) { g_stop_signal = sig; }

// bf16 autocast for the forward pass on CUDA (libtorch 2.x); the CPU trains in fp32.
struct AutocastScope {
  explicit AutocastScope(const at::Device& dev) {
#if TORCH_VERSION_MAJOR >= 2
    on = dev.is_cuda();
    if (on) {
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    }
#else
    (void)dev;
#endif
  }
  ~AutocastScope() {
#if TORCH_VERSION_MAJOR >= 2
    if (on) {
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    }
#endif
  }
  bool on = false;
};

// Weight decay on matrices only; norms' gains are not pulled towards zero.
torch::optim::AdamW make_optimizer(model::Transformer& m, const TrainConfig& c) {
  std::vector<at::Tensor> decay, no_decay;
  for (auto& p : m->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto opts = torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(c.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(0.0)));
  return torch::optim::AdamW(std::move(groups), opts);
}

at::Tensor window_tensor(std::vector<int64_t>& buf, int64_t B, int64_t T, const at::Device& dev) {
  return torch::from_blob(buf.data(), {B, T + 1}, at::kLong).to(dev, /*non_blocking=*/false, /*copy=*/true);
}

double validation_loss(model::Transformer& m, const data::TokenStream& val, const TrainConfig& c,
                       const at::Device& dev) {
  torch::NoGradGuard no_grad;
  m->eval();
  const int64_t B = c.batch_size, T = c.model.T_train;
  std::vector<int64_t> buf(B * (T + 1));
  double sum = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < c.eval_batches; ++b) {
    const int64_t got = data::validation_windows(val, b, B, T, buf.data());
    if (got == 0) break;
    auto w = window_tensor(buf, B, T, dev).narrow(0, 0, got);
    sum += m->loss(w.narrow(1, 0, T), w.narrow(1, 1, T)).item<double>() * got;
    n += got;
  }
  m->train();
  if (n == 0) throw Error("validation shard is shorter than one window of " + std::to_string(T + 1) + " tokens");
  return sum / n;
}

// Keeps metrics.jsonl consistent with the checkpoint a resume starts from:
// records after it were produced by the interrupted process and are redone.
void truncate_metrics(const std::string& path, int64_t step) {
  std::string kept;
  for (const auto& r : io::read_jsonl(path))
    if (r.at("step").get<int64_t>() <= step) kept += r.dump() + "\n";
  io::write_atomic(path, kept);
}

// Adapts a run to the world size it continues with: the global batch
// (world x batch x accum) is kept, so a resume at another size replays the
// same optimisation when the new size divides it.
void adapt_world_size(TrainConfig& cfg, int world) {
  if (cfg.world_size == world) return;
  const int64_t global = cfg.world_size * cfg.batch_size;
  if (global % world != 0)
    throw Error("cannot continue a run with a global micro-batch of " + std::to_string(global) + " on " +
                std::to_string(world) + " ranks (it must divide evenly)");
  cfg.batch_size = global / world;
  cfg.world_size = world;
}

// --init-from: the run starts from a Hugging Face directory's weights. Its
// architecture must be the run's; T_train, θ and the rotary fraction may
// differ (no weight's shape depends on them: continuing at another θ is a
// study ropelab exists for).
void init_from_hf(model::Transformer& m, const std::string& dir) {
  auto src = model::import_hf(dir);
  auto a = model::to_json(m->cfg), b = model::to_json(src->cfg);
  for (const char* free : {"T_train", "rope_theta", "rotary_fraction"}) {
    a.erase(free);
    b.erase(free);
  }
  for (const auto& [key, value] : a.items())
    if (b[key] != value)
      throw Error("--init-from " + dir + ": " + key + " is " + b[key].dump() + " there but " + value.dump() +
                  " in this run (the architecture must match; vocab_size comes from the run's data)");
  torch::NoGradGuard no_grad;
  const auto from = src->named_parameters();
  for (auto& p : m->named_parameters()) p.value().copy_(from[p.key()]);
}

TrainResult run(TrainConfig cfg, const std::string& run_dir, bool resume) {
  const auto env = dist_env_from_environment();
  if (!resume) cfg.world_size = env.world;
  else adapt_world_size(cfg, env.world);
  const at::Device dev = cfg.device == "cuda" ? at::Device(at::kCUDA, env.local_rank) : at::Device(at::kCPU);
  std::unique_ptr<DataParallel> dp;
  if (env.world > 1) dp = std::make_unique<DataParallel>(env, dev, std::chrono::seconds(cfg.dist_timeout_s));
  const bool main = !dp || dp->is_main();

  // Rank 0 prepares missing data; the others wait for it, then all read it.
  if (main) ensure_data(cfg);
  if (dp) dp->barrier();
  const auto data = data::load_prepared(cfg.data_dir);
  const data::TokenStream train_stream(data.train_shards), val_stream(data.val_shards);
  cfg.model.vocab_size = static_cast<int64_t>(data.vocab_size);
  cfg.model = cfg.model.resolved();
  if (cfg.threads > 0) torch::set_num_threads(static_cast<int>(cfg.threads));
  // Retrieval examples need the tokenizer to spell the needle and question.
  const auto mix = data::DataMix::parse(cfg.data_mix);
  std::unique_ptr<data::Tokenizer> tokenizer;
  std::unique_ptr<data::PasskeyBuilder> passkeys;
  if (mix.passkey_fraction > 0) {
    if (data.tokenizer_path.empty()) throw Error("--data-mix needs a tokenizer, and " + data.dir + " has none");
    tokenizer = std::make_unique<data::Tokenizer>(data::Tokenizer::load(data.tokenizer_path));
    passkeys = std::make_unique<data::PasskeyBuilder>(*tokenizer);
    if (passkeys->min_length(2) + 8 > cfg.model.T_train)
      throw Error("--data-mix passkey needs T-train of at least " + std::to_string(passkeys->min_length(2) + 8));
  }

  auto m = model::make_model(cfg.model, cfg.seed);
  if (!resume && !cfg.init_from.empty()) init_from_hf(m, cfg.init_from);
  m->to(dev);
  auto opt = make_optimizer(m, cfg);
  const auto schedule = CheckpointSchedule::parse(cfg.checkpoints);
  const std::string metrics_path = rundir::metrics_path(run_dir);
  const nlohmann::json state = {{"config", to_json(cfg)}, {"data", {{"dir", data.dir}, {"meta", data.meta}}}};

  int64_t step = 0;
  if (resume) {
    const auto entries = read_manifest(run_dir);
    if (entries.empty()) throw Error(run_dir + ": no complete checkpoint to resume from");
    const auto s = load_checkpoint(rundir::checkpoint_path(run_dir, entries.back().file), m, &opt);
    step = s.at("step").get<int64_t>();
    if (main) {
      truncate_metrics(metrics_path, step);
      std::cerr << "resuming " << run_dir << " from step " << step << " on " << env.world << " rank(s)\n";
    }
  } else if (main) {
    io::write_json_atomic(rundir::config_path(run_dir), to_json(cfg));
    std::cerr << "model: " << m->parameter_count() << " parameters (" << cfg.model.n_layers << " layers, d_model "
              << cfg.model.d_model << ", theta " << cfg.model.rope_theta << ", T_train " << cfg.model.T_train << ")\n";
    if (schedule.due(0)) save_checkpoint(run_dir, 0, 0, m, &opt, state);
  }
  if (dp) {
    dp->broadcast_from_main(m->parameters());  // identical weights on every rank
    dp->attach(m->parameters(), static_cast<int64_t>(cfg.dist_bucket_mb * (1 << 20)));
  }

  g_stop_signal = 0;
  auto old_int = std::signal(SIGINT, on_signal);
  auto old_term = std::signal(SIGTERM, on_signal);
  const int64_t B = cfg.batch_size, T = cfg.model.T_train;
  std::vector<int64_t> buf(B * (T + 1));
  TrainResult result;
  Progress progress("train", cfg.max_steps, cfg.log_every);
  m->train();

  // --fault-kill-at (tests of rank failure): SIGKILL, or SIGTERM (a clean stop); validated with the config
  const auto kill = cfg.fault_kill_at.empty() ? std::nullopt : parse_fault_kill(cfg.fault_kill_at);

  while (step < cfg.max_steps) {
    if (kill && step == kill->step && (dp ? dp->rank() : 0) == kill->rank) std::raise(kill->term ? SIGTERM : SIGKILL);
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    opt.zero_grad();
    double loss_sum = 0;
    for (int64_t micro = 0; micro < cfg.grad_accum; ++micro) {
      // Global sample index: rank r of W reads (micro*W + r)*B .. +B-1 of this step.
      const int64_t first = (micro * cfg.world_size + (dp ? dp->rank() : 0)) * B;
      data::sample_windows(train_stream, cfg.seed, step, first, B, T, buf.data());
      if (passkeys) data::apply_data_mix(mix, *passkeys, cfg.seed, step, first, B, T, buf.data());
      auto w = window_tensor(buf, B, T, dev);
      at::Tensor loss;
      {
        AutocastScope autocast(dev);
        loss = m->loss(w.narrow(1, 0, T), w.narrow(1, 1, T)) / double(cfg.grad_accum);
      }
      // The last micro-batch's backward starts the gradient all-reduces as buckets fill.
      if (dp && micro + 1 == cfg.grad_accum) dp->overlap_next_backward();
      loss.backward();
      loss_sum += loss.item<double>();
    }
    // A stop signal counts once any rank has it: the flag travels with the
    // loss, so every rank leaves the loop after the same step.
    bool stopping = g_stop_signal != 0;
    DataParallel::ReduceStats reduce;
    if (dp) {
      reduce = dp->finish_gradients();
      const auto sums = dp->sum({loss_sum, stopping ? 1.0 : 0.0});
      loss_sum = sums[0] / dp->world();
      stopping = sums[1] > 0;
    }
    if (!std::isfinite(loss_sum) || step + 1 == cfg.fault_nan_step) {
      const auto entries = read_manifest(run_dir);
      throw Error("loss is " + std::string(std::isnan(loss_sum) || step + 1 == cfg.fault_nan_step ? "NaN" : "infinite") +
                  " at step " + std::to_string(step + 1) + "; stopped. Last good checkpoint: " +
                  (entries.empty() ? "none" : "step " + std::to_string(entries.back().step)) +
                  " (lower --lr or raise --warmup-steps, then --resume)");
    }
    const double grad_norm = torch::nn::utils::clip_grad_norm_(m->parameters(), cfg.grad_clip > 0 ? cfg.grad_clip : 1e30);
    opt.step();
    ++step;

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json rec = {{"step", step}, {"tokens", step * cfg.tokens_per_step()}, {"loss", loss_sum},
                          {"lr", lr}, {"grad_norm", grad_norm}, {"tok_per_s", cfg.tokens_per_step() / secs}};
    if (dp) rec["allreduce"] = {{"buckets", reduce.buckets}, {"started_in_backward", reduce.started_in_backward}};
    result.last_loss = loss_sum;
    if (main) {  // only rank 0 writes: metrics, validation, checkpoints, progress
      if (step % cfg.eval_every == 0 || step == cfg.max_steps) {
        result.last_val_loss = validation_loss(m, val_stream, cfg, dev);
        rec["val_loss"] = result.last_val_loss;
      }
      io::append_jsonl(metrics_path, rec);
      if (schedule.due(step) || step == cfg.max_steps || stopping)
        save_checkpoint(run_dir, step, step * cfg.tokens_per_step(), m, &opt, state);
      char detail[128];
      std::snprintf(detail, sizeof detail, "loss %.4f | %.1fk tok/s", loss_sum, cfg.tokens_per_step() / secs / 1e3);
      progress.update(step, detail);
    }
    if (stopping) {
      std::cerr << "\nstopped by a signal after saving step " << step
                << "; continue with: ropelab train --resume " << run_dir << "\n";
      result.interrupted = true;
      break;
    }
  }
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  result.final_step = step;
  if (!result.interrupted && main) {
    char detail[160];
    std::snprintf(detail, sizeof detail, "loss %.4f, val_loss %.4f", result.last_loss, result.last_val_loss);
    std::string line = detail;
    if (data.meta.contains("unigram_entropy_nats")) {
      std::snprintf(detail, sizeof detail, " (unigram entropy of the data: %.4f)",
                    data.meta["unigram_entropy_nats"].get<double>());
      line += detail;
    }
    progress.finish(line);
  }
  return result;
}

}  // namespace

data::PreparedData ensure_data(const TrainConfig& cfg) {
  // An existing folder is used as it is: prepared (meta.json) or bare
  // shards (llm.c's, bench/make_tokens.py's); load_prepared names what is wrong.
  if (!io::exists(cfg.data_dir)) {
    std::cerr << "data: " << cfg.data_dir << " not prepared yet; preparing it now\n";
    data::PrepareOptions p;
    p.inputs = cfg.data_inputs;
    p.tokenizer.vocab_size = static_cast<int>(cfg.vocab_size);
    p.tokenizer.model_type = cfg.tokenizer_type;
    p.out_dir = cfg.data_dir;
    data::prepare_data(p);
  }
  return data::load_prepared(cfg.data_dir);
}

TrainResult train_new(const TrainConfig& cfg, const std::string& run_dir) {
  cfg.validate();
  // Only rank 0 judges the directory: the others would see the config it just wrote.
  if (dist_env_from_environment().rank == 0 && io::exists(rundir::config_path(run_dir)))
    throw Error(run_dir + ": already holds a run; continue it with --resume, or choose another --out");
  io::make_dirs(run_dir);
  return run(cfg, run_dir, false);
}

TrainResult train_resume(const std::string& run_dir, int64_t max_steps) {
  const std::string path = rundir::config_path(run_dir);
  if (!io::exists(path)) throw Error(run_dir + ": no run to resume (no config.json)");
  auto cfg = train_config_from_json(io::read_json(path));
  if (max_steps > 0 && max_steps != cfg.max_steps) {
    cfg.max_steps = max_steps;  // the run's length is part of its config: a later --resume keeps it
    if (dist_env_from_environment().rank == 0) io::write_json_atomic(path, to_json(cfg));
  }
  return run(cfg, run_dir, true);
}

}  // namespace ropelab::train
