// γ fits on planted curves: the fit must recover what was planted, prefer the
// right model, and refuse curves it cannot fit.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/error.h"
#include "theory/fit.h"
#include "theory/gamma_record.h"

using ropelab::fit::DecayCurve;
using ropelab::fit::FitOptions;
using ropelab::fit::fit_gamma;

namespace {

const std::vector<double> kDistances = {10, 20, 30, 50, 100, 200, 500, 1000, 2000};

// Deterministic multiplicative noise of a few percent, different per `salt`.
double noise(size_t i, int salt) { return 1 + 0.03 * std::sin(1.7 * i + 2.3 * salt); }

DecayCurve planted_power(double a, double gamma, int salt = 0) {
  DecayCurve c;
  c.distances = kDistances;
  for (size_t i = 0; i < kDistances.size(); ++i)
    c.A.push_back(a * std::pow(kDistances[i], -gamma) * noise(i, salt));
  return c;
}

std::string error_of(const DecayCurve& c, FitOptions opt = {}) {
  try {
    fit_gamma(c, opt);
  } catch (const ropelab::Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(Ols, KnownLine) {
  const auto f = ropelab::fit::ols({0, 1, 2, 3}, {2, 5, 8, 11});  // y = 2 + 3x
  EXPECT_NEAR(f.slope, 3, 1e-12);
  EXPECT_NEAR(f.intercept, 2, 1e-12);
  EXPECT_NEAR(f.R2, 1, 1e-12);
  // y = {0, 1, 0, 1} on x = {0,1,2,3}: slope 0.2, intercept 0.2, SS_res 0.8 of SS_tot 1 → R² 0.2
  const auto g = ropelab::fit::ols({0, 1, 2, 3}, {0, 1, 0, 1});
  EXPECT_NEAR(g.slope, 0.2, 1e-12);
  EXPECT_NEAR(g.R2, 0.2, 1e-12);
  EXPECT_THROW(ropelab::fit::ols({2, 2, 2}, {1, 2, 3}), ropelab::Error);
}

TEST(FitGamma, ExactPowerLaw) {
  DecayCurve c;
  c.distances = kDistances;
  for (double d : kDistances) c.A.push_back(0.3 * std::pow(d, -0.8));
  const auto g = fit_gamma(c);
  EXPECT_NEAR(g.gamma, 0.8, 1e-10);
  EXPECT_NEAR(g.log_A, std::log(0.3), 1e-10);
  EXPECT_NEAR(g.R2, 1, 1e-12);
  EXPECT_EQ(g.n_points, 7);  // d ≥ 30 keeps 30 … 2000
  EXPECT_NEAR(g.ci95_lo, 0.8, 1e-9);
  EXPECT_NEAR(g.ci95_hi, 0.8, 1e-9);
  EXPECT_GT(g.delta_R2_power_minus_exp, 0);
}

TEST(FitGamma, RecoversNoisyPowerLawWithCi) {
  const auto g = fit_gamma(planted_power(0.3, 0.8));
  EXPECT_NEAR(g.gamma, 0.8, 0.03);
  EXPECT_LT(g.ci95_lo, 0.8);
  EXPECT_GT(g.ci95_hi, 0.8);
  EXPECT_LT(g.ci95_lo, g.gamma);
  EXPECT_GT(g.ci95_hi, g.gamma);
  EXPECT_LT(g.ci95_hi - g.ci95_lo, 0.2);
  EXPECT_GT(g.R2, 0.99);
  EXPECT_GT(g.delta_R2_power_minus_exp, 0);
  EXPECT_EQ(g.ci_method, "bootstrap_points_percentile");
  EXPECT_EQ(g.n_resamples, 2000);
  EXPECT_TRUE(g.per_seed_gamma.empty());
  EXPECT_EQ(g.fitted_distances.front(), 30);
}

TEST(FitGamma, BootstrapIsDeterministicPerSeed) {
  const auto c = planted_power(0.3, 0.8);
  FitOptions a, b;
  b.bootstrap_seed = 99;
  EXPECT_EQ(fit_gamma(c, a).ci95_lo, fit_gamma(c, a).ci95_lo);
  EXPECT_EQ(fit_gamma(c, a).ci95_hi, fit_gamma(c, a).ci95_hi);
  EXPECT_NE(fit_gamma(c, a).ci95_lo, fit_gamma(c, b).ci95_lo);
}

TEST(FitGamma, ExponentialDataPrefersExponential) {
  DecayCurve c;
  c.distances = kDistances;
  for (size_t i = 0; i < kDistances.size(); ++i)
    c.A.push_back(0.5 * std::exp(-kDistances[i] / 300) * noise(i, 1));
  const auto g = fit_gamma(c);
  EXPECT_LT(g.delta_R2_power_minus_exp, 0);
  EXPECT_NEAR(g.exp_lambda, 300, 15);
  EXPECT_GT(g.R2_exp, 0.99);
}

TEST(FitGamma, NonDecayingCurveHasInfiniteLambdaNotNan) {
  DecayCurve c;
  c.distances = {30, 50, 100, 300, 1000};
  c.A = {0.001, 0.0013, 0.002, 0.003, 0.004};
  const auto g = fit_gamma(c);
  EXPECT_TRUE(std::isinf(g.exp_lambda));
  EXPECT_FALSE(std::isnan(g.gamma));
  EXPECT_LT(g.gamma, 0);
}

TEST(FitGamma, PerSeedBootstrap) {
  DecayCurve c;
  c.distances = kDistances;
  c.seeds = {42, 123, 7};
  const double gammas[] = {0.75, 0.8, 0.85};
  for (int s = 0; s < 3; ++s) {
    std::vector<double> row;
    for (double d : kDistances) row.push_back(0.3 * std::pow(d, -gammas[s]));
    c.per_seed_A.push_back(row);
  }
  for (size_t i = 0; i < kDistances.size(); ++i)
    c.A.push_back((c.per_seed_A[0][i] + c.per_seed_A[1][i] + c.per_seed_A[2][i]) / 3);
  const auto g = fit_gamma(c);
  EXPECT_EQ(g.ci_method, "bootstrap_seeds_and_points_percentile");
  ASSERT_EQ(g.per_seed_gamma.size(), 3u);
  EXPECT_NEAR(g.per_seed_gamma[0], 0.75, 1e-10);
  EXPECT_NEAR(g.per_seed_gamma[2], 0.85, 1e-10);
  EXPECT_NEAR(g.per_seed_sd, 0.05, 1e-9);  // sample SD of {0.75, 0.8, 0.85}
  // Seed resampling spreads the CI across the seeds' exponents.
  EXPECT_LT(g.ci95_lo, 0.79);
  EXPECT_GT(g.ci95_hi, 0.81);
  EXPECT_GE(g.ci95_lo, 0.74);
  EXPECT_LE(g.ci95_hi, 0.86);
}

// Fewer than 5 fitted points is no γ: the fit says so with a distinct type,
// so an evaluation records the curve as insufficient instead of a number.
TEST(FitGamma, TooFewPointsAfterCutIsInsufficientNotAGamma) {
  DecayCurve c;
  c.distances = {10, 20, 30, 50, 100, 200};
  c.A = {0.1, 0.05, 0.03, 0.02, 0.01, 0.005};
  const std::string msg = error_of(c);
  EXPECT_NE(msg.find("4 of 6 points"), std::string::npos) << msg;
  EXPECT_NE(msg.find(">= 30"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at least 5"), std::string::npos) << msg;
  try {
    fit_gamma(c);
    ADD_FAILURE() << "4 points gave a gamma";
  } catch (const ropelab::fit::InsufficientPoints& e) {
    EXPECT_EQ(e.n_points, 4);
    EXPECT_EQ(e.min_points, 5);
  }
  FitOptions low;
  low.fit_min_d = 20;  // 5 points: enough
  EXPECT_EQ(error_of(c, low), "<no error>");
  FitOptions three;
  three.min_points = 3;  // the old rule, on request
  EXPECT_EQ(error_of(c, three), "<no error>");
  three.min_points = 2;
  EXPECT_NE(error_of(c, three).find("min-points must be >= 3"), std::string::npos);
}

// Z(n, γ) = 1 + Σ_{k=1}^{n−1} k^−γ: exact for small n, Euler–Maclaurin beyond,
// against a float64 direct sum (long double) at several γ, and n at γ = 0.
TEST(PromptNormaliser, EqualsTheDirectSum) {
  for (double gamma : {-1.0, 0.0, 0.5, 0.999999, 1.0, 1.7, 3.0})
    for (double n : {1.0, 2.0, 65.0, 66.0, 80.0, 178.0, 2050.0, 20000.0}) {
      long double direct = 1;
      for (int64_t k = 1; k < int64_t(n); ++k) direct += std::pow(static_cast<long double>(k), -gamma);
      EXPECT_NEAR(ropelab::fit::prompt_normaliser(n, gamma) / double(direct), 1.0, 1e-12) << "n=" << n << " g=" << gamma;
    }
  EXPECT_DOUBLE_EQ(ropelab::fit::prompt_normaliser(128, 0), 128);
  EXPECT_THROW(ropelab::fit::prompt_normaliser(0.5, 1), ropelab::Error);
}

// Attention exactly ∝ max(j,1)^−γ₀ over a prompt of d + 50 tokens: the raw
// slope reads the inflation the growing normaliser adds, the normalised fit
// recovers γ₀. Raw values by hand (OLS of −γ₀ log d − log Z(d + 50) on log d
// over d = 30, 50, 100, 200, computed apart in Python): γ₀ = 0 → 0.602742
// (the uniform baseline), 0.5 → 0.808584, 1 → 1.093035.
TEST(FitGamma, NormalisedFitRecoversThePlantedExponentUnderTheGrowingPrompt) {
  const std::vector<double> ds = {30, 50, 100, 200};
  const double raw_expected[] = {0.602742, 0.808584, 1.093035};
  int i = 0;
  for (double g0 : {0.0, 0.5, 1.0}) {
    DecayCurve c;
    c.distances = ds;
    for (double d : ds) {
      c.prompt_lengths.push_back(d + 50);
      c.A.push_back(std::pow(d, -g0) / ropelab::fit::prompt_normaliser(d + 50, g0));
    }
    FitOptions o;
    o.min_points = 3;
    o.bootstrap_resamples = 50;
    const auto f = fit_gamma(c, o);
    ASSERT_TRUE(f.has_intrinsic);
    EXPECT_NEAR(f.gamma_intrinsic, g0, 1e-6) << g0;
    EXPECT_NEAR(f.intrinsic_R2, 1.0, 1e-9);
    EXPECT_NEAR(f.gamma, raw_expected[i++], 1e-5) << g0;
    EXPECT_LE(f.intrinsic_ci95_lo, g0 + 1e-6);
    EXPECT_GE(f.intrinsic_ci95_hi, g0 - 1e-6);
    EXPECT_NEAR(ropelab::fit::uniform_baseline_gamma(c, 30), 0.60274, 1e-4);
  }
  // At a fixed prompt length the normaliser is constant: both estimates agree, and uniform reads 0.
  DecayCurve fixed;
  for (double d : {30.0, 40.0, 60.0, 80.0, 100.0, 127.0}) {
    fixed.distances.push_back(d);
    fixed.prompt_lengths.push_back(128);
    fixed.A.push_back(0.2 * std::pow(d, -0.7) * noise(size_t(d), 1));
  }
  const auto f = fit_gamma(fixed);
  EXPECT_NEAR(f.gamma_intrinsic, f.gamma, 1e-8);
  EXPECT_NEAR(ropelab::fit::uniform_baseline_gamma(fixed, 30), 0.0, 1e-12);
  // Prompt lengths must be able to hold the key.
  fixed.prompt_lengths[2] = 60;
  EXPECT_NE(error_of(fixed).find("prompt length 60 cannot hold a key at distance 60"), std::string::npos) << error_of(fixed);
}

TEST(FitGamma, RefusesBadValues) {
  auto c = planted_power(0.3, 0.8);
  c.A[4] = 0;
  EXPECT_NE(error_of(c).find("A[4] (d = 100) must be > 0, got 0"), std::string::npos) << error_of(c);
  c = planted_power(0.3, 0.8);
  c.distances[2] = -30;
  EXPECT_NE(error_of(c).find("distance[2]"), std::string::npos) << error_of(c);
  c = planted_power(0.3, 0.8);
  c.A.pop_back();
  EXPECT_NE(error_of(c).find("9 distances but 8 A values"), std::string::npos) << error_of(c);
  c = planted_power(0.3, 0.8);
  c.per_seed_A = {std::vector<double>(9, 0.01), std::vector<double>(8, 0.01)};
  EXPECT_NE(error_of(c).find("seed #1"), std::string::npos) << error_of(c);
  FitOptions none;
  none.bootstrap_resamples = 0;
  EXPECT_NE(error_of(planted_power(0.3, 0.8), none).find("bootstrap"), std::string::npos);
}

// The record is the fit's published form: predictions come from closed_forms,
// unknown inputs are null (never NaN), and the table shows every record.
TEST(GammaRecord, PredictionsAndNulls) {
  DecayCurve c;
  c.distances = kDistances;
  for (double d : kDistances) c.A.push_back(0.3 * std::pow(d, -0.8));
  const auto g = fit_gamma(c);
  ropelab::MeasurementInfo info;
  info.model_id = "planted";
  // θ = 1e4 at T_eval = 2000 (largest fitted distance): γ_Padé = 0.752201314 (by hand:
  // z = 0.282842712, 1.717157288 / 2.282842712); |0.8 − 0.752201314| / 0.752201314 = 0.063544
  const auto rec = ropelab::make_gamma_record({{"rope_theta", 1e4}, {"n_params_M", 140}}, c, g, info);
  EXPECT_EQ(rec["model_id"], "planted");
  EXPECT_EQ(rec["measurement"]["T_eval"], 2000);
  EXPECT_EQ(rec["measurement"]["T_eval_rule"], "largest_fitted_distance");
  EXPECT_NEAR(rec["predictions"]["gamma_pade"].get<double>(), 0.752201314, 1e-9);
  EXPECT_NEAR(rec["predictions"]["relative_error"].get<double>(), 0.063544, 1e-5);
  // 0.752201314 − log10(140/14)/(2π) = 0.752201314 − 0.159154943
  EXPECT_NEAR(rec["predictions"]["gamma_random_pred"].get<double>(), 0.593046371, 1e-9);
  EXPECT_TRUE(rec["arch"]["d_model"].is_null());
  EXPECT_TRUE(rec["arch"].contains("T_train"));
  EXPECT_TRUE(rec["measurement"]["corpus"].is_null());
  EXPECT_TRUE(rec["ropelab"]["per_seed_sd"].is_null());

  const auto unknown = ropelab::make_gamma_record(nullptr, c, g, info);
  EXPECT_TRUE(unknown["predictions"]["gamma_pade"].is_null());
  EXPECT_TRUE(unknown["predictions"]["relative_error"].is_null());
  EXPECT_EQ(unknown.dump().find("NaN"), std::string::npos);
  EXPECT_THROW(ropelab::make_gamma_record({{"rope_theta", -5}}, c, g, info), ropelab::Error);

  const std::string table = ropelab::gamma_table({rec, unknown});
  EXPECT_NE(table.find("planted"), std::string::npos);
  EXPECT_NE(table.find("0.8000"), std::string::npos);
  EXPECT_NE(table.find("6.4%"), std::string::npos);
}

TEST(GammaRecord, InfiniteLambdaIsNull) {
  DecayCurve c;
  c.distances = {30, 50, 100, 300, 1000};
  c.A = {0.001, 0.0013, 0.002, 0.003, 0.004};
  ropelab::MeasurementInfo info;
  info.T_eval = 4096;
  const auto rec = ropelab::make_gamma_record(nullptr, c, fit_gamma(c), info);
  EXPECT_TRUE(rec["ropelab"]["exp_fit"]["lambda"].is_null());
  EXPECT_EQ(rec["measurement"]["T_eval"], 4096);
  EXPECT_EQ(rec["measurement"]["T_eval_rule"], "given");
}
