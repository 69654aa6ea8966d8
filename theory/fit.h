// Fits of an attention-decay curve A(d): the power law A = a·d^−γ that the TAF
// papers claim, the exponential A = e^b·e^(−d/λ) it is tested against, and a
// bootstrap CI95 for γ. Same protocol as the public tool (DESIGN.md,
// "γ measurement protocol"), deterministic given the bootstrap seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ropelab::fit {

struct DecayCurve {
  std::vector<double> distances;
  std::vector<double> A;                         // mean attention at each distance
  std::vector<std::vector<double>> per_seed_A;   // [seed][distance]; may be empty
  std::vector<int64_t> seeds;                    // labels of per_seed_A rows; may be empty
};

struct LineFit {
  double slope = 0, intercept = 0, R2 = 0;
};
// Ordinary least squares y = intercept + slope·x. Needs ≥ 2 points and ≥ 2
// distinct x. R² = 1 when y is exactly fitted (including constant y).
LineFit ols(const std::vector<double>& x, const std::vector<double>& y);

struct FitOptions {
  double fit_min_d = 30;          // the paper fits d ≥ 30
  int bootstrap_resamples = 2000; // must be ≥ 1
  uint64_t bootstrap_seed = 12345;
};

struct GammaFit {
  double gamma = 0, log_A = 0, R2 = 0;  // log A = log_A − γ·log d
  int n_points = 0;
  // log A = exp_b − d/exp_lambda. A curve that does not decay (slope ≥ 0) has
  // exp_lambda = +infinity (JSON writers must emit null for it).
  double exp_b = 0, exp_lambda = 0, R2_exp = 0, delta_R2_power_minus_exp = 0;
  double ci95_lo = 0, ci95_hi = 0;
  std::string ci_method;  // "bootstrap_seeds_and_points_percentile" or "bootstrap_points_percentile"
  int n_resamples = 0;
  std::vector<double> fitted_distances;  // the distances with d ≥ fit_min_d
  std::vector<double> per_seed_gamma;    // empty without per-seed data
  double per_seed_sd = 0;                // sample SD of per_seed_gamma; 0 with < 2 seeds
  double fit_min_d = 0;                  // the cut used, so a record is self-describing
  uint64_t bootstrap_seed = 0;
};

// Throws ropelab::Error for mismatched sizes, a non-positive or non-finite A or
// distance (naming its index and value), or fewer than 3 points after the cut.
GammaFit fit_gamma(const DecayCurve& curve, const FitOptions& opt = {});

}  // namespace ropelab::fit
