// Fits of an attention-decay curve A(d): the power law A = a·d^−γ that the TAF
// papers claim, the exponential A = e^b·e^(−d/λ) it is tested against, and a
// bootstrap CI95 for γ. Same protocol as the public tool (DESIGN.md,
// "γ measurement protocol"), deterministic given the bootstrap seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace ropelab::config { template <class C> struct Field; }

namespace ropelab::fit {

struct DecayCurve {
  std::vector<double> distances;
  std::vector<double> A;                         // mean attention at each distance
  std::vector<std::vector<double>> per_seed_A;   // [seed][distance]; may be empty
  std::vector<int64_t> seeds;                    // labels of per_seed_A rows; may be empty
  // The prompt length n(d) each A(d) was measured at; empty when unknown
  // (curves measured elsewhere), and then no normalised fit is made.
  std::vector<double> prompt_lengths;
};

// The normaliser of attention that is exactly a power law over a prompt of
// n tokens whose query is the last one: the key j positions back (j = 1 ..
// n−1) weighs j^−γ and the query itself weighs as j = 1, so
//   Z(n, γ) = 1 + Σ_{k=1}^{n−1} k^−γ        (Z(n, 0) = n: uniform attention).
// Exact sum for n ≤ 64, else Euler–Maclaurin beyond k = 32 (relative error
// below 1e-12 for γ in [−3, 5]). Needs n ≥ 1.
double prompt_normaliser(double n, double gamma);

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
  int min_points = 5;             // fewer fitted points is no γ (InsufficientPoints); must be ≥ 3
};
// Each option once (common/config_fields.h): `eval gamma` and `fit gamma`
// take their flags from it, a record its JSON, check_flags its rules.
const std::vector<config::Field<FitOptions>>& fit_fields();

// Thrown by fit_gamma when fewer than FitOptions::min_points distances are
// left after the d ≥ fit_min_d cut: an evaluation records the curve as
// insufficient rather than a γ.
struct InsufficientPoints : Error {
  int n_points = 0, min_points = 0;
  InsufficientPoints(const std::string& what, int n, int min) : Error(what), n_points(n), min_points(min) {}
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
  // The normalised fit (curve.prompt_lengths given): log A(d) = log_A − γ log d
  // − log Z(n(d), γ), the power law the attention would follow over the prompt
  // if the softmax did not renormalise over a prompt that grows with d. At a
  // fixed prompt length Z is constant and it equals the plain fit.
  bool has_intrinsic = false;
  double gamma_intrinsic = 0, intrinsic_log_A = 0, intrinsic_R2 = 0;
  double intrinsic_ci95_lo = 0, intrinsic_ci95_hi = 0;  // from the same resamples as ci95
  std::vector<double> per_seed_gamma;    // empty without per-seed data
  double per_seed_sd = 0;                // sample SD of per_seed_gamma; 0 with < 2 seeds
  double fit_min_d = 0;                  // the cut used, so a record is self-describing
  uint64_t bootstrap_seed = 0;
};

// Throws ropelab::Error for mismatched sizes, a non-positive or non-finite A,
// distance or prompt length (naming its index and value), and
// InsufficientPoints for fewer than opt.min_points points after the cut.
GammaFit fit_gamma(const DecayCurve& curve, const FitOptions& opt = {});

// γ that uniform attention (A(d) = 1/n(d)) reads over the curve's distances
// d >= fit_min_d: the OLS slope of −log n(d) on log d; 0 at a fixed prompt
// length. Needs the curve's prompt lengths and 2 distinct fitted distances.
double uniform_baseline_gamma(const DecayCurve& c, double fit_min_d);

// The normalised exponent alone: argmin over γ in [−3, 5] of the least-squares
// misfit of log A(d) + γ log d + log Z(n(d), γ) to a constant (the constant is
// log_A). Needs ≥ 2 distinct distances.
struct IntrinsicFit {
  double gamma = 0, log_A = 0, R2 = 0;
};
IntrinsicFit fit_intrinsic(const std::vector<double>& distances, const std::vector<double>& prompt_lengths,
                           const std::vector<double>& log_A);

}  // namespace ropelab::fit
