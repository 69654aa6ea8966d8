// The α* analysis (eval/alpha_star.h) against a fake scorer with a planted
// optimum, and its near-best rule against hand-computed Wilson bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/alpha_star.h"
#include "eval/niah.h"

using namespace ropelab;
using eval::AlphaPoint;

namespace {

// A scorer whose retrieval peaks at α = `optimum` (a bump in log2 α over
// chance), sampled as n Bernoulli prompts: the analysis sees only hits.
struct FakeScorer {
  double optimum;
  std::mt19937_64 rng{7};
  double truth(double alpha) const {
    const double x = std::log2(alpha) - std::log2(optimum);
    return 0.1 + 0.85 * std::exp(-x * x / 2);
  }
  AlphaPoint score(const std::string& source, double alpha, int64_t L, int64_t n) {
    std::binomial_distribution<int64_t> draw(n, truth(alpha));
    AlphaPoint p{"ntk", source, alpha, L};
    p.hits = draw(rng);
    p.n = n;
    return p;
  }
};

AlphaPoint point(double factor, int64_t hits, int64_t n, const std::string& source = "fixed") {
  AlphaPoint p{"ntk", source, factor, 256};
  p.hits = hits, p.n = n;
  return p;
}

}  // namespace

TEST(AlphaStar, FindsThePlantedOptimumOfAFakeScorer) {
  for (double optimum : {0.5, 4.0, 16.0}) {
    FakeScorer scorer{optimum};
    std::vector<AlphaPoint> pts;
    for (double a = 0.25; a <= 64; a *= 2) pts.push_back(scorer.score("fixed", a, 512, 400));
    const double alpha_opt = 1.5;  // away from every optimum planted here
    pts.push_back(scorer.score("alpha_opt", alpha_opt, 512, 400));
    const auto found = eval::find_alpha_star(pts);
    ASSERT_EQ(found.size(), 1u);
    const auto& a = found[0];
    EXPECT_DOUBLE_EQ(a.best_factor, optimum);
    EXPECT_NEAR(a.best_accuracy, scorer.truth(optimum), 0.06);
    // The neighbours (one factor of 2 away: 0.61 true accuracy) are far outside the best's interval.
    EXPECT_EQ(a.near_best, std::vector<double>{optimum});
    const auto rec = eval::alpha_star_record(a);
    EXPECT_EQ(rec["kind"], "alpha_star");
    EXPECT_EQ(rec["factors"].size(), 9u);
    EXPECT_DOUBLE_EQ(rec["alpha_opt"]["ratio_best_to_value"].get<double>(), optimum / alpha_opt);
    EXPECT_FALSE(rec["alpha_opt"]["within_best_interval"].get<bool>());
  }
}

TEST(AlphaStar, NearBestIsInsideTheBestsWilsonInterval) {
  // 50/50 is best; its Wilson lower bound is 50/(50 + 1.96²) = 0.9287.
  const double lo = eval::wilson95(50, 50).first;
  ASSERT_NEAR(lo, 0.9287, 1e-4);
  std::vector<AlphaPoint> pts = {point(1, 46, 50), point(2, 50, 50), point(4, 47, 50), point(8, 30, 50),
                                 point(3.57, 47, 50, "alpha_opt")};
  auto a = eval::find_alpha_star(pts).at(0);
  EXPECT_DOUBLE_EQ(a.best_factor, 2);
  EXPECT_EQ(a.near_best, (std::vector<double>{2, 4}));  // 0.94 >= 0.9287 > 0.92
  const auto rec = eval::alpha_star_record(a);
  EXPECT_EQ(rec["near_best_span"], nlohmann::json({2, 4}));
  EXPECT_TRUE(rec["alpha_opt"]["within_best_interval"].get<bool>());
  EXPECT_TRUE(rec["alpha_opt"]["inside_near_best_span"].get<bool>());
  EXPECT_NEAR(rec["alpha_opt"]["ratio_best_to_value"].get<double>(), 2 / 3.57, 1e-12);

  // A tie at the top: the smallest factor is α*, and the tie is counted.
  pts[3] = point(8, 50, 50);
  a = eval::find_alpha_star(pts).at(0);
  EXPECT_DOUBLE_EQ(a.best_factor, 2);
  EXPECT_EQ(a.ties, 2);
  EXPECT_EQ(a.near_best, (std::vector<double>{2, 4, 8}));
}

TEST(AlphaStar, GroupsByFamilyAndLengthAndKeepsWhyAClosedFormWasNotRun) {
  std::vector<AlphaPoint> pts = {point(1, 5, 10), point(2, 7, 10), point(4, 9, 10)};
  auto yarn = point(2, 3, 10);
  yarn.family = "yarn";  // a single yarn factor: no curve, no α*
  pts.push_back(yarn);
  auto other = point(1, 1, 10);
  other.length = 512;
  pts.push_back(other);
  pts.push_back(point(8, 2, 10));
  pts.back().length = 512;
  AlphaPoint undefined{"ntk", "alpha_opt_measured", NAN, 256};
  undefined.gamma = 1.09;
  undefined.unavailable = "α_opt is undefined at γ = 1.09";
  pts.push_back(undefined);
  const auto found = eval::find_alpha_star(pts);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].length, 256);
  EXPECT_DOUBLE_EQ(found[0].best_factor, 4);
  EXPECT_EQ(found[1].length, 512);
  EXPECT_DOUBLE_EQ(found[1].best_factor, 8);
  const auto rec = eval::alpha_star_record(found[0]);
  EXPECT_TRUE(rec["alpha_opt_measured"]["value"].is_null());
  EXPECT_EQ(rec["alpha_opt_measured"]["gamma"], 1.09);
  EXPECT_EQ(rec["alpha_opt_measured"]["unavailable"], undefined.unavailable);
  EXPECT_FALSE(rec.contains("alpha_opt"));
  const auto table = eval::alpha_star_table({rec, eval::alpha_star_record(found[1])});
  EXPECT_NE(table.find("undefined"), std::string::npos);
  EXPECT_NE(table.find("512"), std::string::npos);
}

// α* at an end of the sweep says only that the best lies there or beyond:
// recorded as censored and shown as ≥ / ≤; inside the sweep it is a value.
TEST(AlphaStar, AnAlphaStarAtTheEndOfTheSweepIsCensored) {
  auto a = eval::find_alpha_star({point(1, 10, 50), point(2, 20, 50), point(4, 40, 50)}).at(0);
  EXPECT_EQ(a.censored, "upper");
  auto rec = eval::alpha_star_record(a);
  EXPECT_EQ(rec["alpha_star_censored"], "upper");
  EXPECT_EQ(eval::alpha_star_text(rec), "≥ 4");
  EXPECT_FALSE(rec["near_best_covers_sweep"].get<bool>());
  EXPECT_NE(eval::alpha_star_table({rec}).find("≥ 4"), std::string::npos);

  a = eval::find_alpha_star({point(1, 40, 50), point(2, 20, 50), point(4, 10, 50)}).at(0);
  EXPECT_EQ(eval::alpha_star_record(a)["alpha_star_censored"], "lower");
  EXPECT_EQ(eval::alpha_star_text(eval::alpha_star_record(a)), "≤ 1");

  a = eval::find_alpha_star({point(1, 10, 50), point(2, 40, 50), point(4, 38, 50)}).at(0);
  rec = eval::alpha_star_record(a);
  EXPECT_TRUE(rec["alpha_star_censored"].is_null());
  EXPECT_EQ(eval::alpha_star_text(rec), "2");

  // A flat curve cannot tell factors apart: every factor is near the best.
  a = eval::find_alpha_star({point(1, 5, 50), point(2, 5, 50), point(4, 5, 50)}).at(0);
  EXPECT_TRUE(eval::alpha_star_record(a)["near_best_covers_sweep"].get<bool>());
}

// The other published forms beside α* (ntk only), and how far each method
// retrieves against Liu's and Men's predicted limits.
TEST(AlphaStar, OtherFormsAndReachRecords) {
  const eval::RopeShape rope{1e4, 32, 128};
  auto rec = eval::alpha_star_record(
      eval::find_alpha_star({point(1, 10, 50), point(8, 40, 50), point(16, 45, 50), point(32, 20, 50)}).at(0));
  rec["length"] = 512;
  eval::add_other_forms(rec, rope);
  EXPECT_NEAR(rec["other_forms"]["liu"]["value"].get<double>(), 12.4807, 1e-3);  // test_closed_forms' hand value
  EXPECT_TRUE(rec["other_forms"]["liu"]["inside_near_best_span"].get<bool>());   // near-best 8..16
  EXPECT_NEAR(rec["other_forms"]["men"]["value"].get<double>(), 12487.2278 / 1e4, 1e-5);
  auto yarn = rec;
  yarn["family"] = "yarn";
  yarn.erase("other_forms");
  eval::add_other_forms(yarn, rope);
  EXPECT_FALSE(yarn.contains("other_forms"));

  std::vector<AlphaPoint> pts;
  for (auto [L, hits] : {std::pair<int64_t, int64_t>{128, 45}, {256, 30}, {512, 8}}) {
    auto p = point(1, hits, 50);
    p.family = "none", p.method = "none", p.length = L;
    pts.push_back(p);
  }
  const auto reach = eval::reach_records(pts, rope);
  ASSERT_EQ(reach.size(), 1u);
  // 30/50: Wilson lower bound 0.462 > 0.1; 8/50: 0.0834 < 0.1.
  EXPECT_EQ(reach[0]["longest_retrieving_length"], 256);
  EXPECT_NEAR(reach[0]["predicted_longest"]["liu_T_extra"].get<double>(), 198.6918, 1e-3);
  EXPECT_EQ(reach[0]["predicted_longest"]["men_first_violation_minus_1"], 473);
}
