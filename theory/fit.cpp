#include "theory/fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <sstream>

#include "common/error.h"

namespace ropelab::fit {
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

// γ of one resample: seeds (when given) then points, both with replacement.
double resample_gamma(std::mt19937_64& rng, const DecayCurve& c, const std::vector<size_t>& kept) {
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
    std::vector<double> x, y;
    std::set<double> distinct;
    for (size_t k = 0; k < kept.size(); ++k) {
      const size_t j = draw_index(rng, kept.size());
      x.push_back(std::log(c.distances[kept[j]]));
      y.push_back(log_A[j]);
      distinct.insert(x.back());
    }
    if (distinct.size() >= 2) return power_gamma(x, y);
  }
  throw Error("decay curve: bootstrap could not draw two distinct distances");
}

}  // namespace

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
  if (opt.bootstrap_resamples < 1)
    throw Error("fit: bootstrap resamples must be >= 1, got " + std::to_string(opt.bootstrap_resamples));
  std::vector<size_t> kept;
  for (size_t i = 0; i < c.distances.size(); ++i)
    if (c.distances[i] >= opt.fit_min_d) kept.push_back(i);
  if (kept.size() < 3)
    throw Error("decay curve: " + std::to_string(kept.size()) + " of " +
                std::to_string(c.distances.size()) + " points have d >= " + num(opt.fit_min_d) +
                " (fit_min_d); need at least 3 to fit gamma");

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

  std::mt19937_64 rng(opt.bootstrap_seed);
  std::vector<double> boot;
  for (int r = 0; r < opt.bootstrap_resamples; ++r) boot.push_back(resample_gamma(rng, c, kept));
  std::sort(boot.begin(), boot.end());
  g.ci95_lo = percentile(boot, 0.025);
  g.ci95_hi = percentile(boot, 0.975);
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
