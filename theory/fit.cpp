#include "theory/fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <sstream>

#include "common/config_fields.h"
#include "common/error.h"

namespace ropelab::fit {

const std::vector<config::Field<FitOptions>>& fit_fields() {
  using C = FitOptions;
  static const std::vector<config::Field<C>> fields = {
      {"fit_min_d", "fit-min-d", &C::fit_min_d, "fit", "fit only distances d >= this",
       {[](const C& c) { return std::isfinite(c.fit_min_d) && c.fit_min_d >= 0; }, "must be >= 0"}},
      {"bootstrap_resamples", "bootstrap", &C::bootstrap_resamples, "fit", "bootstrap resamples for the CI95",
       {[](const C& c) { return c.bootstrap_resamples >= 1; }, "must be >= 1"}},
      {"bootstrap_seed", "bootstrap-seed", &C::bootstrap_seed, "fit", "seed of the bootstrap resampling"},
      {"min_points", "min-points", &C::min_points, "fit",
       "fewer fitted distances is recorded as insufficient, never as a γ",
       {[](const C& c) { return c.min_points >= 3; }, "must be >= 3"}},
  };
  return fields;
}

namespace {

std::string num(double x) {
  std::ostringstream s;
  s.precision(10);
  s << x;
  return s.str();
}

void require_positive(double v, const std::string& what) {
  if (!(std::isfinite(v) && v > 0)) throw Error("decay curve: " + what + " must be > 0, got " + num(v));
}

void validate(const DecayCurve& c) {
  const size_t n = c.distances.size();
  if (c.A.size() != n)
    throw Error("decay curve: " + std::to_string(n) + " distances but " +
                std::to_string(c.A.size()) + " A values");
  if (!c.seeds.empty() && c.seeds.size() != c.per_seed_A.size())
    throw Error("decay curve: " + std::to_string(c.seeds.size()) + " seed labels but " +
                std::to_string(c.per_seed_A.size()) + " per-seed curves");
  for (size_t i = 0; i < n; ++i) {
    require_positive(c.distances[i], "distance[" + std::to_string(i) + "]");
    require_positive(c.A[i], "A[" + std::to_string(i) + "] (d = " + num(c.distances[i]) + ")");
  }
  if (!c.prompt_lengths.empty()) {
    if (c.prompt_lengths.size() != n)
      throw Error("decay curve: " + std::to_string(n) + " distances but " + std::to_string(c.prompt_lengths.size()) +
                  " prompt lengths");
    for (size_t i = 0; i < n; ++i) {
      require_positive(c.prompt_lengths[i], "prompt_length[" + std::to_string(i) + "]");
      if (c.prompt_lengths[i] <= c.distances[i])
        throw Error("decay curve: prompt length " + num(c.prompt_lengths[i]) + " cannot hold a key at distance " +
                    num(c.distances[i]) + " (index " + std::to_string(i) + ")");
    }
  }
  for (size_t s = 0; s < c.per_seed_A.size(); ++s) {
    const std::string seed = c.seeds.empty() ? "#" + std::to_string(s) : std::to_string(c.seeds[s]);
    if (c.per_seed_A[s].size() != n)
      throw Error("decay curve: seed " + seed + " has " + std::to_string(c.per_seed_A[s].size()) +
                  " A values, expected one per distance (" + std::to_string(n) + ")");
    for (size_t i = 0; i < n; ++i)
      require_positive(c.per_seed_A[s][i], "A of seed " + seed + " at d = " + num(c.distances[i]));
  }
}

// Uniform index in [0, n) by rejection: std::uniform_int_distribution differs
// between standard libraries, and the CI must be reproducible everywhere.
size_t draw_index(std::mt19937_64& rng, size_t n) {
  const uint64_t range = static_cast<uint64_t>(n);
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % range;
  uint64_t r;
  do r = rng(); while (r >= limit);
  return static_cast<size_t>(r % range);
}

double power_gamma(const std::vector<double>& log_d, const std::vector<double>& log_A) {
  return -ols(log_d, log_A).slope;
}

// Percentile with linear interpolation between order statistics (numpy's default).
double percentile(const std::vector<double>& sorted, double p) {
  const double h = (sorted.size() - 1) * p;
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  return sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]);
}

struct ResampledGammas {
  double raw = 0, intrinsic = 0;
};

// γ of one resample: seeds (when given) then points, both with replacement;
// the normalised γ from the same draw when the curve has prompt lengths.
ResampledGammas resample_gamma(std::mt19937_64& rng, const DecayCurve& c, const std::vector<size_t>& kept) {
  std::vector<double> log_A(kept.size());
  if (c.per_seed_A.empty()) {
    for (size_t k = 0; k < kept.size(); ++k) log_A[k] = std::log(c.A[kept[k]]);
  } else {
    const size_t S = c.per_seed_A.size();
    std::vector<double> mean(kept.size(), 0.0);
    for (size_t s = 0; s < S; ++s) {
      const auto& row = c.per_seed_A[draw_index(rng, S)];
      for (size_t k = 0; k < kept.size(); ++k) mean[k] += row[kept[k]] / S;
    }
    for (size_t k = 0; k < kept.size(); ++k) log_A[k] = std::log(mean[k]);
  }
  // A slope needs two distinct distances; redraw the points until there are.
  for (int attempt = 0; attempt < 10000; ++attempt) {
    std::vector<double> x, y, d, n;
    std::set<double> distinct;
    for (size_t k = 0; k < kept.size(); ++k) {
      const size_t j = draw_index(rng, kept.size());
      d.push_back(c.distances[kept[j]]);
      x.push_back(std::log(d.back()));
      y.push_back(log_A[j]);
      if (!c.prompt_lengths.empty()) n.push_back(c.prompt_lengths[kept[j]]);
      distinct.insert(x.back());
    }
    if (distinct.size() < 2) continue;
    ResampledGammas g;
    g.raw = power_gamma(x, y);
    if (!n.empty()) g.intrinsic = fit_intrinsic(d, n, y).gamma;
    return g;
  }
  throw Error("decay curve: bootstrap could not draw two distinct distances");
}

// Least-squares misfit of log A + γ log d + log Z(n, γ) to its mean, and that mean.
std::pair<double, double> intrinsic_misfit(const std::vector<double>& log_d, const std::vector<double>& n,
                                           const std::vector<double>& log_A, double gamma) {
  std::vector<double> r(log_A.size());
  double mean = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    r[i] = log_A[i] + gamma * log_d[i] + std::log(prompt_normaliser(n[i], gamma));
    mean += r[i] / r.size();
  }
  double ss = 0;
  for (double v : r) ss += (v - mean) * (v - mean);
  return {ss, mean};
}

}  // namespace

double prompt_normaliser(double n, double gamma) {
  if (!(n >= 1)) throw Error("prompt normaliser: n must be >= 1, got " + num(n));
  const double m = std::floor(n) - 1;  // keys before the query: k = 1 .. m
  double z = 1;                        // the query itself, weighed as k = 1
  if (m <= 64) {
    for (double k = 1; k <= m; ++k) z += std::pow(k, -gamma);
    return z;
  }
  const double K = 32;
  for (double k = 1; k < K; ++k) z += std::pow(k, -gamma);
  // Sum over k = K .. m of f(k) = k^-gamma by Euler-Maclaurin, to the third-derivative term.
  const double f_K = std::pow(K, -gamma), f_m = std::pow(m, -gamma);
  const double a = 1 - gamma, span = std::log(m / K);
  const double integral = std::fabs(a * span) < 1e-12 ? std::pow(K, a) * span : std::pow(K, a) * std::expm1(a * span) / a;
  auto d1 = [&](double x) { return -gamma * std::pow(x, -gamma - 1); };
  auto d3 = [&](double x) { return -gamma * (gamma + 1) * (gamma + 2) * std::pow(x, -gamma - 3); };
  z += integral + (f_K + f_m) / 2 + (d1(m) - d1(K)) / 12 - (d3(m) - d3(K)) / 720;
  return z;
}

double uniform_baseline_gamma(const DecayCurve& c, double fit_min_d) {
  if (c.prompt_lengths.size() != c.distances.size())
    throw Error("uniform baseline: the curve has no prompt length per distance");
  std::vector<double> log_d, log_A;
  for (size_t i = 0; i < c.distances.size(); ++i)
    if (c.distances[i] >= fit_min_d) {
      log_d.push_back(std::log(c.distances[i]));
      log_A.push_back(-std::log(c.prompt_lengths[i]));
    }
  return -ols(log_d, log_A).slope + 0.0;  // + 0.0: a constant curve reads 0, not −0
}

IntrinsicFit fit_intrinsic(const std::vector<double>& distances, const std::vector<double>& prompt_lengths,
                           const std::vector<double>& log_A) {
  if (distances.size() != prompt_lengths.size() || distances.size() != log_A.size())
    throw Error("intrinsic fit: distances, prompt lengths and log A differ in length");
  std::vector<double> log_d;
  for (double d : distances) log_d.push_back(std::log(d));
  if (std::set<double>(log_d.begin(), log_d.end()).size() < 2)
    throw Error("intrinsic fit: needs at least 2 distinct distances");
  auto misfit = [&](double g) { return intrinsic_misfit(log_d, prompt_lengths, log_A, g).first; };
  // A coarse scan over [-3, 5], then golden-section search around its best point.
  const double lo_end = -3, hi_end = 5, step = 0.05;
  double best = lo_end, best_ss = misfit(lo_end);
  for (int i = 1; lo_end + i * step <= hi_end + 1e-9; ++i)
    if (const double ss = misfit(lo_end + i * step); ss < best_ss) best = lo_end + i * step, best_ss = ss;
  double a = std::max(lo_end, best - step), b = std::min(hi_end, best + step);
  const double phi = (std::sqrt(5.0) - 1) / 2;
  double x1 = b - phi * (b - a), x2 = a + phi * (b - a), f1 = misfit(x1), f2 = misfit(x2);
  while (b - a > 1e-10) {
    if (f1 < f2) b = x2, x2 = x1, f2 = f1, x1 = b - phi * (b - a), f1 = misfit(x1);
    else a = x1, x1 = x2, f1 = f2, x2 = a + phi * (b - a), f2 = misfit(x2);
  }
  IntrinsicFit f;
  f.gamma = (a + b) / 2;
  const auto [ss, mean] = intrinsic_misfit(log_d, prompt_lengths, log_A, f.gamma);
  f.log_A = mean;
  double my = 0, syy = 0;
  for (double y : log_A) my += y / log_A.size();
  for (double y : log_A) syy += (y - my) * (y - my);
  f.R2 = syy > 0 ? 1 - ss / syy : 1.0;
  return f;
}

LineFit ols(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2)
    throw Error("ols: need >= 2 paired points, got " + std::to_string(x.size()) + " x and " +
                std::to_string(y.size()) + " y");
  const double n = x.size();
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxx = 0, sxy = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0) throw Error("ols: all x values are equal (" + num(x[0]) + "); no slope");
  LineFit fit;
  fit.slope = sxy / sxx;
  fit.intercept = my - fit.slope * mx;
  double ss_res = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = y[i] - (fit.intercept + fit.slope * x[i]);
    ss_res += r * r;
  }
  fit.R2 = syy > 0 ? 1 - ss_res / syy : 1.0;
  return fit;
}

GammaFit fit_gamma(const DecayCurve& c, const FitOptions& opt) {
  validate(c);
  config::validate(opt, fit_fields(), "fit");
  std::vector<size_t> kept;
  for (size_t i = 0; i < c.distances.size(); ++i)
    if (c.distances[i] >= opt.fit_min_d) kept.push_back(i);
  if (static_cast<int>(kept.size()) < opt.min_points)
    throw InsufficientPoints("decay curve: " + std::to_string(kept.size()) + " of " +
                                 std::to_string(c.distances.size()) + " points have d >= " + num(opt.fit_min_d) +
                                 " (fit_min_d); a gamma needs at least " + std::to_string(opt.min_points),
                             static_cast<int>(kept.size()), opt.min_points);

  GammaFit g;
  g.fit_min_d = opt.fit_min_d;
  g.bootstrap_seed = opt.bootstrap_seed;
  g.n_points = static_cast<int>(kept.size());
  std::vector<double> d, log_d, log_A;
  for (size_t i : kept) {
    d.push_back(c.distances[i]);
    log_d.push_back(std::log(c.distances[i]));
    log_A.push_back(std::log(c.A[i]));
  }
  g.fitted_distances = d;

  const LineFit pow = ols(log_d, log_A);
  g.gamma = -pow.slope;
  g.log_A = pow.intercept;
  g.R2 = pow.R2;
  const LineFit ex = ols(d, log_A);
  g.exp_b = ex.intercept;
  g.exp_lambda = ex.slope < 0 ? -1 / ex.slope : std::numeric_limits<double>::infinity();
  g.R2_exp = ex.R2;
  g.delta_R2_power_minus_exp = g.R2 - g.R2_exp;

  std::vector<double> n;
  if (!c.prompt_lengths.empty()) {
    for (size_t i : kept) n.push_back(c.prompt_lengths[i]);
    const auto in = fit_intrinsic(d, n, log_A);
    g.has_intrinsic = true;
    g.gamma_intrinsic = in.gamma;
    g.intrinsic_log_A = in.log_A;
    g.intrinsic_R2 = in.R2;
  }

  std::mt19937_64 rng(opt.bootstrap_seed);
  std::vector<double> boot, boot_intrinsic;
  for (int r = 0; r < opt.bootstrap_resamples; ++r) {
    const auto b = resample_gamma(rng, c, kept);
    boot.push_back(b.raw);
    boot_intrinsic.push_back(b.intrinsic);
  }
  std::sort(boot.begin(), boot.end());
  g.ci95_lo = percentile(boot, 0.025);
  g.ci95_hi = percentile(boot, 0.975);
  if (g.has_intrinsic) {
    std::sort(boot_intrinsic.begin(), boot_intrinsic.end());
    g.intrinsic_ci95_lo = percentile(boot_intrinsic, 0.025);
    g.intrinsic_ci95_hi = percentile(boot_intrinsic, 0.975);
  }
  g.ci_method = c.per_seed_A.empty() ? "bootstrap_points_percentile"
                                     : "bootstrap_seeds_and_points_percentile";
  g.n_resamples = opt.bootstrap_resamples;

  for (const auto& row : c.per_seed_A) {
    std::vector<double> y;
    for (size_t i : kept) y.push_back(std::log(row[i]));
    g.per_seed_gamma.push_back(power_gamma(log_d, y));
  }
  const size_t S = g.per_seed_gamma.size();
  if (S >= 2) {
    double mean = 0, ss = 0;
    for (double v : g.per_seed_gamma) mean += v / S;
    for (double v : g.per_seed_gamma) ss += (v - mean) * (v - mean);
    g.per_seed_sd = std::sqrt(ss / (S - 1));
  }
  return g;
}

}  // namespace ropelab::fit
