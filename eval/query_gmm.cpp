#include "eval/query_gmm.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace ropelab::eval {
namespace {

// log N(x | mu, cov) for every row of x: [n].
at::Tensor log_gaussian(const at::Tensor& x, const at::Tensor& mu, const at::Tensor& cov) {
  const int64_t D = x.size(1);
  auto L = at::linalg_cholesky(cov);
  auto diff = (x - mu).t();                                            // [D, n]
  auto z = at::linalg_solve_triangular(L, diff, /*upper=*/false);      // L z = diff
  auto maha = (z * z).sum(0);
  auto logdet = 2.0 * at::log(at::diagonal(L)).sum();
  return -0.5 * (maha + logdet + D * std::log(2.0 * M_PI));
}

}  // namespace

GmmFit fit_gmm(const at::Tensor& x_in, int K, int max_iter, double reg) {
  auto x = x_in.to(at::kDouble).contiguous();
  const int64_t n = x.size(0), D = x.size(1);
  if (K < 1 || n < 2 * K) throw Error("GMM: need at least 2K samples (K=" + std::to_string(K) + ", n=" + std::to_string(n) + ")");
  const double scale = x.var(0).mean().item<double>() * reg + 1e-12;
  const auto eye = at::eye(D, x.options()) * scale;

  // Farthest-point initialisation: deterministic and spread out.
  std::vector<int64_t> centres{0};
  auto dist = ((x - x[0]) * (x - x[0])).sum(1);
  for (int k = 1; k < K; ++k) {
    centres.push_back(dist.argmax().item<int64_t>());
    dist = at::minimum(dist, ((x - x[centres.back()]) * (x - x[centres.back()])).sum(1));
  }
  auto mu = x.index_select(0, at::tensor(centres, at::kLong));         // [K, D]
  auto centred = x - x.mean(0);
  auto cov0 = at::matmul(centred.t(), centred) / double(n) + eye;
  std::vector<at::Tensor> cov(K, cov0);
  auto logw = at::full({K}, -std::log(double(K)), x.options());

  GmmFit fit;
  fit.K = K;
  double prev = -std::numeric_limits<double>::infinity();
  for (int it = 0; it < max_iter; ++it) {
    // E-step: responsibilities from log densities.
    std::vector<at::Tensor> lp;
    for (int k = 0; k < K; ++k) lp.push_back(log_gaussian(x, mu[k], cov[k]) + logw[k]);
    auto logp = at::stack(lp, 1);                                       // [n, K]
    auto lse = at::logsumexp(logp, 1, /*keepdim=*/true);
    const double ll = lse.sum().item<double>();
    auto r = at::exp(logp - lse);                                       // [n, K]
    // M-step.
    auto nk = r.sum(0) + 1e-12;
    logw = at::log(nk / double(n));
    mu = at::matmul(r.t(), x) / nk.unsqueeze(1);
    for (int k = 0; k < K; ++k) {
      auto d = x - mu[k];
      cov[k] = at::matmul((d * r.select(1, k).unsqueeze(1)).t(), d) / nk[k] + eye;
    }
    fit.iterations = it + 1;
    fit.log_likelihood = ll;
    if (std::abs(ll - prev) <= 1e-7 * std::abs(ll)) break;
    prev = ll;
  }
  const double params = (K - 1) + K * D + K * D * (D + 1) / 2.0;
  fit.bic = -2.0 * fit.log_likelihood + params * std::log(double(n));
  return fit;
}

GmmSelection select_gmm(const at::Tensor& x, int max_K) {
  GmmSelection s;
  for (int K = 1; K <= max_K; ++K) {
    if (x.size(0) < 2 * K) break;
    s.fits.push_back(fit_gmm(x, K));
    if (s.fits.back().bic < s.fits[s.best_K - 1].bic) s.best_K = K;
  }
  if (s.fits.empty()) throw Error("GMM: too few samples");
  s.delta_bic = s.fits[0].bic - s.fits[s.best_K - 1].bic;
  return s;
}

}  // namespace ropelab::eval
