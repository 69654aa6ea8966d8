#include <gtest/gtest.h>
#include <torch/torch.h>

#include "eval/query_gmm.h"

using namespace ropelab;

TEST(QueryGmm, FindsThePlantedNumberOfComponents) {
  torch::manual_seed(3);
  // Three well-separated 2-D clusters of 300 points each.
  auto a = torch::randn({300, 2}, at::kDouble) * 0.5 + torch::tensor({0., 0.}, at::kDouble);
  auto b = torch::randn({300, 2}, at::kDouble) * 0.5 + torch::tensor({6., 0.}, at::kDouble);
  auto c = torch::randn({300, 2}, at::kDouble) * 0.5 + torch::tensor({0., 6.}, at::kDouble);
  auto sel = eval::select_gmm(torch::cat({a, b, c}), 6);
  EXPECT_EQ(sel.best_K, 3);
  EXPECT_GT(sel.delta_bic, 100.0);
  // One Gaussian (correlated, 4-D): K = 1 wins and ΔBIC is 0.
  auto m = torch::randn({600, 4}, at::kDouble);
  m = torch::matmul(m, torch::tensor({{1., .5, 0., 0.}, {0., 1., .3, 0.}, {0., 0., 2., 0.}, {0., 0., 0., .1}}, at::kDouble));
  auto one = eval::select_gmm(m, 4);
  EXPECT_EQ(one.best_K, 1);
  EXPECT_EQ(one.delta_bic, 0.0);
}

TEST(QueryGmm, LogLikelihoodOfOneGaussianMatchesTheClosedForm) {
  torch::manual_seed(4);
  auto x = torch::randn({500, 3}, at::kDouble) * 2.0;
  auto f = eval::fit_gmm(x, 1, 50, 0.0);
  // MLE Gaussian: ll = -n/2 (D log 2π + log det Σ̂ + D), Σ̂ the biased sample covariance.
  auto c = x - x.mean(0);
  auto cov = torch::matmul(c.t(), c) / 500.0;
  const double ll = -250.0 * (3 * std::log(2 * M_PI) + std::log(torch::det(cov).item<double>()) + 3);
  EXPECT_NEAR(f.log_likelihood, ll, 1e-6 * std::abs(ll));
}
