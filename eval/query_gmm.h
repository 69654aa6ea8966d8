// Is a head's query distribution one Gaussian? (The assumption behind
// Expected Attention.) Gaussian mixtures with K = 1..max_K components are
// fitted by EM (full covariances, float64) and compared by BIC.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace ropelab::eval {

struct GmmFit {
  int K = 1;
  double log_likelihood = 0, bic = 0;
  int iterations = 0;
};

// EM from a deterministic farthest-point initialisation; covariances are
// regularised by `reg` x the mean per-dimension variance. x: [n, D].
GmmFit fit_gmm(const at::Tensor& x, int K, int max_iter = 200, double reg = 1e-3);

struct GmmSelection {
  std::vector<GmmFit> fits;  // K = 1 .. max_K
  int best_K = 1;            // smallest BIC
  double delta_bic = 0;      // BIC(K=1) - BIC(best): > 0 means a mixture fits better
};
GmmSelection select_gmm(const at::Tensor& x, int max_K);

}  // namespace ropelab::eval
