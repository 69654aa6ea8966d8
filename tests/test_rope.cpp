// RoPE against an independent reference: each rotated pair (x_i, x_{i+rd/2})
// as a complex number multiplied by e^{i·pos·θ^(-2i/rd)}, in double.
#include <gtest/gtest.h>

#include <complex>
#include <cmath>

#include "model/rope.h"

using namespace ropelab::model;

namespace {
std::vector<double> rotate_ref(const std::vector<double>& x, double pos, double theta, int rd) {
  std::vector<double> out = x;
  for (int i = 0; i < rd / 2; ++i) {
    const double w = std::pow(theta, -2.0 * i / rd);
    const std::complex<double> z(x[i], x[i + rd / 2]);
    const auto r = z * std::polar(1.0, pos * w);
    out[i] = r.real();
    out[i + rd / 2] = r.imag();
  }
  return out;
}
at::Tensor as_tensor(const std::vector<double>& v) { return at::tensor(v, at::kDouble).view({1, 1, 1, (int64_t)v.size()}); }
}  // namespace

TEST(Rope, InverseFrequenciesByHand) {
  // θ=10000, rd=4: θ^0 = 1 and θ^(-2/4) = 1/100.
  auto f = rope_inv_freq(10000.0, 4);
  ASSERT_EQ(f.numel(), 2);
  EXPECT_DOUBLE_EQ(f[0].item<double>(), 1.0);
  EXPECT_NEAR(f[1].item<double>(), 0.01, 1e-15);
  // θ=500000, rd=8: 500000^(-6/8) = 5.318295896944989e-05 (computed by hand: e^(-0.75·ln 5e5)).
  EXPECT_NEAR(rope_inv_freq(500000.0, 8)[3].item<double>(), 5.318295896944989e-05, 1e-15);
}

TEST(Rope, MatchesComplexRotationIncludingPartialRotary) {
  const std::vector<double> x = {0.3, -1.2, 0.7, 2.0, -0.4, 0.9, 1.5, -0.8};
  for (int rd : {8, 4}) {  // rd=4: the last 4 dims pass through unchanged (Pythia-style)
    for (double pos : {0.0, 1.0, 7.0, 1234.0}) {
      auto inv = rope_inv_freq(10000.0, rd);
      auto t = rope_tables(inv, at::tensor({(int64_t)pos}, at::kLong), 1.0, at::kDouble);
      auto got = apply_rope(as_tensor(x), t).flatten();
      const auto ref = rotate_ref(x, pos, 10000.0, rd);
      for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(got[i].item<double>(), ref[i], 1e-12) << "rd " << rd << " pos " << pos;
    }
  }
}

TEST(Rope, DotProductDependsOnlyOnOffset) {
  auto q = at::randn({1, 1, 1, 16}, at::kDouble), k = at::randn({1, 1, 1, 16}, at::kDouble);
  auto inv = rope_inv_freq(10000.0, 16);
  auto dot = [&](int64_t m, int64_t n) {
    auto qm = apply_rope(q, rope_tables(inv, at::tensor({m}, at::kLong), 1.0, at::kDouble));
    auto kn = apply_rope(k, rope_tables(inv, at::tensor({n}, at::kLong), 1.0, at::kDouble));
    return (qm * kn).sum().item<double>();
  };
  const double base = dot(10, 3);
  EXPECT_NEAR(dot(107, 100), base, 1e-10);
  EXPECT_NEAR(dot(5007, 5000), base, 1e-9);
  EXPECT_GT(std::abs(dot(10, 4) - base), 1e-6);  // a different offset gives a different score
}

TEST(Rope, AttentionFactorScalesCosAndSin) {
  // transformers multiplies cos and sin by YaRN's / LongRoPE's attention factor.
  auto inv = rope_inv_freq(10000.0, 8);
  const auto pos = at::tensor({0, 1, 7, 300}, at::kLong);
  auto a = rope_tables(inv, pos, 1.25, at::kDouble);
  auto b = rope_tables(inv, pos, 1.0, at::kDouble);
  EXPECT_TRUE(at::allclose(a.cos, b.cos * 1.25, 0, 1e-15));
  EXPECT_TRUE(at::allclose(a.sin, b.sin * 1.25, 0, 1e-15));
  EXPECT_DOUBLE_EQ(b.cos[3][0].item<double>(), std::cos(300.0));  // pair 0 turns once per position
}
