#include "train/trainer.h"

#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "common/error.h"
#include "common/io.h"
#include "common/progress.h"
#include "data/loader.h"
#include "data/passkey.h"
#include "model/hf_format.h"
#include "train/adamw.h"
#include "train/autocast.h"
#include "train/checkpoint.h"
#include "train/cuda_graph_step.h"
#include "train/distributed.h"
#include "train/fingerprint.h"
#include "train/schedule.h"

namespace ropelab::train {
namespace {

std::atomic<int> g_stop_signal{0};
void on_signal(int sig) { g_stop_signal = sig; }

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

// --profile-steps A:B: libtorch's op-level profiler over steps A..B; its
// Chrome trace (one event per op, backward ops and the step's named scopes
// included) lands in RUN/profile.json when step B ends, written beside and
// renamed so a cut-short run leaves no half-written trace.
class StepProfile {
 public:
  StepProfile(const std::string& spec, const std::string& run_dir)
      : range_(parse_step_range(spec)), path_(rundir::profile_path(run_dir)) {}
  void before(int64_t next_step) {
    if (range_ && next_step == range_->first) recorder_ = std::make_unique<torch::autograd::profiler::RecordProfile>(partial());
  }
  void after(int64_t done_step) {
    if (!recorder_ || done_step != range_->last) return;
    recorder_.reset();  // writes the trace
    std::filesystem::rename(partial(), path_);
    std::cerr << "\nprofile of steps " << range_->first << ".." << range_->last << ": " << path_ << "\n";
  }

 private:
  std::string partial() const { return path_ + ".partial"; }
  std::optional<StepRange> range_;
  std::string path_;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> recorder_;
};

// One training run: the state its steps share, set up in order by the
// constructor; run() is the loop.
class Trainer {
 public:
  Trainer(TrainConfig cfg, const std::string& run_dir, bool resume);
  TrainResult run();

 private:
  void setup_ranks();
  void setup_data();
  void setup_model();
  void start_or_resume();
  // What one optimizer step leaves: its loss and gradient norm when they were
  // read back (a CUDA-graph step reads them only every --log-every steps).
  struct StepOutcome {
    double loss = 0, grad_norm = 0;
    bool stopping = false, read = true;
    DataParallel::ReduceStats reduce;
  };
  StepOutcome eager_step(double lr);
  StepOutcome graph_step(double lr);
  bool reads_back(int64_t next_step, bool stopping) const;
  double step_loss(int64_t step, bool& stopping, DataParallel::ReduceStats& reduce);
  void fill_windows(int64_t step, int64_t first_sample);
  void stop_if_not_finite(double loss_sum, int64_t step) const;
  void record_step(int64_t step, const StepOutcome& out, double lr, double tok_per_s, TrainResult& result,
                   Progress& progress);
  void finish(const TrainResult& result, Progress& progress) const;
  int64_t rank() const { return dp_ ? dp_->rank() : 0; }

  TrainConfig cfg_;
  const std::string run_dir_;
  const bool resume_;
  DistEnv env_;
  at::Device dev_{at::kCPU};
  std::unique_ptr<DataParallel> dp_;
  bool main_ = true;  // rank 0 (or the only rank): writes metrics, validation, checkpoints, progress
  data::PreparedData data_;
  std::unique_ptr<data::TokenStream> train_stream_, val_stream_;
  data::DataMix mix_;
  std::unique_ptr<data::Tokenizer> tokenizer_;       // retrieval examples spell the needle and question
  std::unique_ptr<data::PasskeyBuilder> passkeys_;   // null without --data-mix passkey
  model::Transformer m_{nullptr};
  std::unique_ptr<torch::optim::AdamW> opt_;
  std::unique_ptr<CudaGraphStep> graph_;  // the captured step, when cuda_graph_why_not() allows it
  std::unique_ptr<CheckpointSchedule> schedule_;
  std::string metrics_path_;
  nlohmann::json state_;  // what every checkpoint carries besides the weights
  std::optional<FaultKill> kill_;
  std::unique_ptr<StepProfile> profile_;  // --profile-steps, on the main rank
  int64_t step_ = 0;
  std::vector<int64_t> buf_;
};

Trainer::Trainer(TrainConfig cfg, const std::string& run_dir, bool resume)
    : cfg_(std::move(cfg)), run_dir_(run_dir), resume_(resume), env_(dist_env_from_environment()) {
  setup_ranks();
  setup_data();
  setup_model();
  start_or_resume();
}

void Trainer::setup_ranks() {
  if (!resume_) cfg_.world_size = env_.world;
  else adapt_world_size(cfg_, env_.world);
  dev_ = cfg_.device == "cuda" ? at::Device(at::kCUDA, env_.local_rank) : at::Device(at::kCPU);
  if (env_.world > 1) dp_ = std::make_unique<DataParallel>(env_, dev_, std::chrono::seconds(cfg_.dist_timeout_s));
  main_ = !dp_ || dp_->is_main();
}

void Trainer::setup_data() {
  // Rank 0 prepares missing data; the others wait for it, then all read it.
  if (main_) ensure_data(cfg_);
  if (dp_) dp_->barrier();
  data_ = data::load_prepared(cfg_.data_dir);
  train_stream_ = std::make_unique<data::TokenStream>(data_.train_shards);
  val_stream_ = std::make_unique<data::TokenStream>(data_.val_shards);
  cfg_.model.vocab_size = static_cast<int64_t>(data_.vocab_size);
  cfg_.model = cfg_.model.resolved();
  if (cfg_.threads > 0) torch::set_num_threads(static_cast<int>(cfg_.threads));
  mix_ = data::DataMix::parse(cfg_.data_mix);
  if (mix_.passkey_fraction > 0) {
    if (data_.tokenizer_path.empty()) throw Error("--data-mix needs a tokenizer, and " + data_.dir + " has none");
    tokenizer_ = std::make_unique<data::Tokenizer>(data::Tokenizer::load(data_.tokenizer_path));
    passkeys_ = std::make_unique<data::PasskeyBuilder>(*tokenizer_);
    if (passkeys_->min_length(2) + 8 > cfg_.model.T_train)
      throw Error("--data-mix passkey needs T-train of at least " + std::to_string(passkeys_->min_length(2) + 8));
  }
}

void Trainer::setup_model() {
  m_ = model::make_model(cfg_.model, cfg_.seed);
  if (!resume_ && !cfg_.init_from.empty()) init_from_hf(m_, cfg_.init_from);
  m_->to(dev_);
  opt_ = std::make_unique<torch::optim::AdamW>(make_optimizer(m_, cfg_));
  schedule_ = std::make_unique<CheckpointSchedule>(CheckpointSchedule::parse(cfg_.checkpoints));
  metrics_path_ = rundir::metrics_path(run_dir_);
  // Each checkpoint names the build that wrote it (a resumed run may change build or threads).
  state_ = {{"config", to_json(cfg_)}, {"data", {{"dir", data_.dir}, {"meta", data_.meta}}},
            {"build", build_fingerprint(cfg_.device)}};
  // --fault-kill-at (tests of rank failure): checked with the config
  if (!cfg_.fault_kill_at.empty()) kill_ = parse_fault_kill(cfg_.fault_kill_at);
  if (!cfg_.profile_steps.empty() && main_) profile_ = std::make_unique<StepProfile>(cfg_.profile_steps, run_dir_);
  buf_.resize(cfg_.batch_size * (cfg_.model.T_train + 1));
}

// Resumes from the newest checkpoint, or writes config.json (and step 0 when due).
void Trainer::start_or_resume() {
  if (resume_) {
    const auto entries = read_manifest(run_dir_);
    if (entries.empty()) throw Error(run_dir_ + ": no complete checkpoint to resume from");
    const auto s = load_checkpoint(rundir::checkpoint_path(run_dir_, entries.back().file), m_, opt_.get());
    step_ = s.at("step").get<int64_t>();
    if (main_) {
      truncate_metrics(metrics_path_, step_);
      std::cerr << "resuming " << run_dir_ << " from step " << step_ << " on " << env_.world << " rank(s)\n";
    }
  } else if (main_) {
    io::write_json_atomic(rundir::config_path(run_dir_), to_json(cfg_));
    std::cerr << "model: " << m_->parameter_count() << " parameters (" << cfg_.model.n_layers << " layers, d_model "
              << cfg_.model.d_model << ", theta " << cfg_.model.rope_theta << ", T_train " << cfg_.model.T_train << ")\n";
    const auto& b = state_["build"];
    std::cerr << "build: " << b["commit"].get<std::string>().substr(0, 12) << (b["commit_dirty"] == "true" ? "+dirty" : "")
              << ", libtorch " << b["libtorch"].get<std::string>() << ", " << b["threads"] << " thread(s), BLAS "
              << (b["blas"]["config"].is_string() ? b["blas"]["config"].get<std::string>() : b["blas"]["library"].get<std::string>())
              << "\n";
    std::cerr << "step: autocast " << cfg_.autocast_on(cfg_.device) << ", AdamW "
              << (!cfg_.fused_adamw ? "unfused (--fused-adamw 0)"
                  : fused_adamw_available(dev_) ? "fused" : "unfused (this libtorch has no fused kernel here)")
              << ", cross-entropy " << (cfg_.ce_chunk_on(cfg_.device) > 0
                                            ? "fused with the head, " + std::to_string(cfg_.ce_chunk_on(cfg_.device)) + " rows a chunk"
                                            : std::string("over full logits")) << "\n";
    if (schedule_->due(0)) save_checkpoint(run_dir_, 0, 0, m_, opt_.get(), state_);
  }
  if (main_)
    io::append_jsonl(rundir::builds_path(run_dir_),
                     {{"step", step_}, {"world_size", env_.world}, {"build", state_["build"]}});
  if (dp_) {
    dp_->broadcast_from_main(m_->parameters());  // identical weights on every rank
    dp_->attach(m_->parameters(), static_cast<int64_t>(cfg_.dist_bucket_mb * (1 << 20)));
  }
}

TrainResult Trainer::run() {
  g_stop_signal = 0;
  auto old_int = std::signal(SIGINT, on_signal);
  auto old_term = std::signal(SIGTERM, on_signal);
  TrainResult result;
  Progress progress("train", cfg_.max_steps, cfg_.log_every);
  m_->train();
  const std::string why_not = cuda_graph_why_not(cfg_, dp_ != nullptr);
  if (why_not.empty()) graph_ = std::make_unique<CudaGraphStep>(m_, *opt_, cfg_, dev_);
  else if (cfg_.device == "cuda" && main_) std::cerr << "step: not captured as a CUDA graph: " << why_not << "\n";
  // Throughput over the steps since the loss was last read (every step, unless captured).
  auto since = std::chrono::steady_clock::now();
  int64_t steps_since = 0;
  while (step_ < cfg_.max_steps) {
    if (kill_ && step_ == kill_->step && rank() == kill_->rank) std::raise(kill_->term ? SIGTERM : SIGKILL);
    const double lr = lr_at(step_, cfg_.lr, cfg_.min_lr, cfg_.warmup_steps, cfg_.max_steps);
    if (profile_) profile_->before(step_ + 1);
    const StepOutcome out = graph_ ? graph_step(lr) : eager_step(lr);
    ++step_;
    if (profile_) profile_->after(step_);
    ++steps_since;
    if (!out.read) continue;
    const auto now = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(now - since).count();
    record_step(step_, out, lr, double(cfg_.tokens_per_step() * steps_since) / secs, result, progress);
    since = now;
    steps_since = 0;
    if (out.stopping) {
      std::cerr << "\nstopped by a signal after saving step " << step_
                << "; continue with: ropelab train --resume " << run_dir_ << "\n";
      result.interrupted = true;
      break;
    }
  }
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  result.final_step = step_;
  if (!result.interrupted && main_) finish(result, progress);
  return result;
}

Trainer::StepOutcome Trainer::eager_step(double lr) {
  for (auto& g : opt_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
  StepOutcome out;
  out.loss = step_loss(step_, out.stopping, out.reduce);
  stop_if_not_finite(out.loss, step_);
  {
    RECORD_USER_SCOPE("ropelab::clip_grad_norm");
    out.grad_norm = torch::nn::utils::clip_grad_norm_(m_->parameters(), cfg_.grad_clip > 0 ? cfg_.grad_clip : 1e30);
  }
  {
    RECORD_USER_SCOPE("ropelab::optimizer");
    adamw_step(*opt_, cfg_.fused_adamw);
  }
  return out;
}

// The captured step (one rank, one micro-batch): the windows in, one replay,
// and the loss read back only when it is due.
Trainer::StepOutcome Trainer::graph_step(double lr) {
  const int64_t B = cfg_.batch_size, T = cfg_.model.T_train;
  fill_windows(step_, 0);
  graph_->run(torch::from_blob(buf_.data(), {B, T + 1}, at::kLong), lr);
  StepOutcome out;
  out.stopping = g_stop_signal != 0;
  out.read = reads_back(step_ + 1, out.stopping);
  if (out.read) {
    out.loss = graph_->loss();
    out.grad_norm = graph_->grad_norm();
    stop_if_not_finite(out.loss, step_);
  }
  return out;
}

// A step whose loss must be on the host: logged, validated, checkpointed, the last, or stopping.
bool Trainer::reads_back(int64_t next_step, bool stopping) const {
  return stopping || next_step == cfg_.max_steps || next_step % cfg_.log_every == 0 ||
         next_step % cfg_.eval_every == 0 || schedule_->due(next_step) || next_step == cfg_.fault_nan_step;
}

// buf_ <- the B windows of global samples first_sample.. at `step`, passkey
// examples mixed in as --data-mix asks.
void Trainer::fill_windows(int64_t step, int64_t first_sample) {
  RECORD_USER_SCOPE("ropelab::data");
  const int64_t B = cfg_.batch_size, T = cfg_.model.T_train;
  data::sample_windows(*train_stream_, cfg_.seed, step, first_sample, B, T, buf_.data());
  if (passkeys_) data::apply_data_mix(mix_, *passkeys_, cfg_.seed, step, first_sample, B, T, buf_.data());
}

// Forward and backward over the step's micro-batches; the loss summed over
// them (averaged over ranks), and whether any rank has a stop signal.
double Trainer::step_loss(int64_t step, bool& stopping, DataParallel::ReduceStats& reduce) {
  const int64_t B = cfg_.batch_size, T = cfg_.model.T_train;
  opt_->zero_grad();
  double loss_sum = 0;
  for (int64_t micro = 0; micro < cfg_.grad_accum; ++micro) {
    // Global sample index: rank r of W reads (micro*W + r)*B .. +B-1 of this step.
    const int64_t first = (micro * cfg_.world_size + rank()) * B;
    fill_windows(step, first);
    auto w = window_tensor(buf_, B, T, dev_);
    at::Tensor loss;
    {
      RECORD_USER_SCOPE("ropelab::forward");
      AutocastScope autocast(dev_, cfg_.autocast_on(cfg_.device) == "bf16");
      loss = m_->loss(w.narrow(1, 0, T), w.narrow(1, 1, T), nullptr, cfg_.ce_chunk_on(cfg_.device)) /
             double(cfg_.grad_accum);
    }
    // The last micro-batch's backward starts the gradient all-reduces as buckets fill.
    if (dp_ && micro + 1 == cfg_.grad_accum) dp_->overlap_next_backward();
    {
      RECORD_USER_SCOPE("ropelab::backward");
      loss.backward();
    }
    loss_sum += loss.item<double>();
  }
  // A stop signal counts once any rank has it: the flag travels with the
  // loss, so every rank leaves the loop after the same step.
  stopping = g_stop_signal != 0;
  if (dp_) {
    reduce = dp_->finish_gradients();
    const auto sums = dp_->sum({loss_sum, stopping ? 1.0 : 0.0});
    loss_sum = sums[0] / dp_->world();
    stopping = sums[1] > 0;
  }
  return loss_sum;
}

void Trainer::stop_if_not_finite(double loss_sum, int64_t step) const {
  if (std::isfinite(loss_sum) && step + 1 != cfg_.fault_nan_step) return;
  const auto entries = read_manifest(run_dir_);
  throw Error("loss is " + std::string(std::isnan(loss_sum) || step + 1 == cfg_.fault_nan_step ? "NaN" : "infinite") +
              " at step " + std::to_string(step + 1) + "; stopped. Last good checkpoint: " +
              (entries.empty() ? "none" : "step " + std::to_string(entries.back().step)) +
              " (lower --lr or raise --warmup-steps, then --resume)");
}

// Rank 0 writes: the metrics record, validation, checkpoints, progress.
void Trainer::record_step(int64_t step, const StepOutcome& out, double lr, double tok_per_s, TrainResult& result,
                          Progress& progress) {
  const int64_t tokens = cfg_.tokens_per_step();
  const double loss_sum = out.loss;
  const bool stopping = out.stopping;
  nlohmann::json rec = {{"step", step}, {"tokens", step * tokens}, {"loss", loss_sum},
                        {"lr", lr}, {"grad_norm", out.grad_norm}, {"tok_per_s", tok_per_s}};
  if (dp_) rec["allreduce"] = {{"buckets", out.reduce.buckets}, {"started_in_backward", out.reduce.started_in_backward}};
  if (graph_) rec["cuda_graph"] = true;
  result.last_loss = loss_sum;
  if (!main_) return;
  if (step % cfg_.eval_every == 0 || step == cfg_.max_steps) {
    result.last_val_loss = validation_loss(m_, *val_stream_, cfg_, dev_);
    rec["val_loss"] = result.last_val_loss;
  }
  io::append_jsonl(metrics_path_, rec);
  if (graph_ && (schedule_->due(step) || step == cfg_.max_steps || stopping)) graph_->sync_optimizer(*opt_);
  if (schedule_->due(step) || step == cfg_.max_steps || stopping)
    save_checkpoint(run_dir_, step, step * tokens, m_, opt_.get(), state_);
  char detail[128];
  std::snprintf(detail, sizeof detail, "loss %.4f | %.1fk tok/s", loss_sum, tok_per_s / 1e3);
  progress.update(step, detail);
}

void Trainer::finish(const TrainResult& result, Progress& progress) const {
  char detail[160];
  std::snprintf(detail, sizeof detail, "loss %.4f, val_loss %.4f", result.last_loss, result.last_val_loss);
  std::string line = detail;
  if (data_.meta.contains("unigram_entropy_nats")) {
    std::snprintf(detail, sizeof detail, " (unigram entropy of the data: %.4f)",
                  data_.meta["unigram_entropy_nats"].get<double>());
    line += detail;
  }
  progress.finish(line);
}

TrainResult run(TrainConfig cfg, const std::string& run_dir, bool resume) {
  return Trainer(std::move(cfg), run_dir, resume).run();
}

}  // namespace

data::PreparedData ensure_data(const TrainConfig& cfg) {
  // An existing folder is used as it is: prepared (meta.json) or bare
  // shards (llm.c's, bench/make_tokens.py's); load_prepared names what is wrong.
  // Trainings started together (a study's --jobs) may all find it missing:
  // one prepares it under the lock, the others wait and then read it.
  if (io::exists(cfg.data_dir)) return data::load_prepared(cfg.data_dir);
  const auto parent = std::filesystem::path(cfg.data_dir).lexically_normal().parent_path();
  if (!parent.empty()) io::make_dirs(parent.string());
  io::FileLock lock(std::filesystem::path(cfg.data_dir).lexically_normal().string() + ".lock");
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
