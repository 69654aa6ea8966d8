// Closed forms against values computed independently of theory/closed_forms.cpp:
// literals worked out by hand (arithmetic in the comments) and brute-force sums.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/error.h"
#include "theory/closed_forms.h"
#include "theory/extrapolation_laws.h"

namespace cf = ropelab::closed_forms;

namespace {

// z = T·√2/θ = 2048 · 1.41421356237 / 1e4 = 2896.30937574 / 1e4 = 0.289630937574
const double kTheta = 1e4, kT = 2048;

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const ropelab::Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(ClosedForms, GammaPadeByHand) {
  // (2 − z)/(2 + z) = 1.710369062426 / 2.289630937574 = 0.747006443
  EXPECT_NEAR(cf::gamma_pade(kTheta, kT), 0.747006443, 1e-9);
  // Pythia-70m panel: θ = 1e4, T = 2000: z = 0.282842712; 1.717157288 / 2.282842712 = 0.752201314
  EXPECT_NEAR(cf::gamma_pade(1e4, 2000), 0.752201314, 1e-9);
  // z = 2/3 gives exactly (4/3)/(8/3) = 1/2; θ = 1.5·√2·T makes z = 2/3.
  EXPECT_NEAR(cf::gamma_pade(1.5 * std::sqrt(2.0) * 1000, 1000), 0.5, 1e-12);
}

TEST(ClosedForms, VariantsByHand) {
  EXPECT_NEAR(cf::gamma_linear(kTheta, kT), 0.710369062, 1e-9);  // 1 − 0.289630938
  EXPECT_NEAR(cf::gamma_lerch(kTheta, kT), 0.775415641, 1e-9);   // 1 / 1.289630938
  EXPECT_NEAR(cf::gamma_exp(kTheta, kT), 0.748539775, 1e-9);     // e^−0.289630938
}

TEST(ClosedForms, ThetaDesignAndAlphaOptExample) {
  // T√2(1+γ)/(2(1−γ)) at γ = 0.85, T = 4096: 5792.6187 · 1.85 / 0.3 = 35721.149
  EXPECT_NEAR(cf::theta_design(0.85, 4096), 35721.149, 1e-3);
  // DESIGN.md example: θ = 1e4, L = 4096 → α ≈ 3.57 (35721.149 / 1e4)
  EXPECT_NEAR(cf::alpha_opt(1e4, 4096), 3.5721149, 1e-6);
  EXPECT_NEAR(cf::alpha_opt(1e4, 4096, 0.85), 3.57, 0.005);
  // γ = 0: T√2/2 = 1000 · 0.70710678
  EXPECT_NEAR(cf::theta_design(0.0, 1000), 707.10678, 1e-5);
}

TEST(ClosedForms, DHorizonInvertsPade) {
  // Includes z > 2 (T > √2·θ), where γ_Padé is negative.
  for (double theta : {500.0, 1e4, 5e5})
    for (double T : {10.0, 2048.0, 32768.0, 1e6})
      EXPECT_NEAR(cf::d_horizon(theta, cf::gamma_pade(theta, T)), T, 1e-9 * T)
          << "theta=" << theta << " T=" << T;
  // θ(1−γ)√2/(1+γ) at θ = 1e4, γ = 0.5: 1e4 · 0.5 · 1.41421356 / 1.5 = 4714.0452
  EXPECT_NEAR(cf::d_horizon(1e4, 0.5), 4714.0452, 1e-4);
}

TEST(ClosedForms, NtkScalings) {
  EXPECT_DOUBLE_EQ(cf::theta_ntk_plain(1e4, 4), 4e4);
  // 4^(64/62) = e^(1.0322581 · 1.3862944) = e^1.4310136 = 4.1829366
  EXPECT_NEAR(cf::theta_ntk_aware(1e4, 4, 64), 41829.366, 1e-2);
}

TEST(ClosedForms, DfContinuumExample) {
  // DESIGN.md: γ = 0.931, N = 4096, f = 0.9 → ≈ 2145.
  // 4096^0.069 = e^(0.069 · 8.3177662) = e^0.5739259 = 1.7751868;
  // 0.1 + 0.9 · 1.7751868 = 1.6976681; ^(1/0.069): e^(0.5292700 / 0.069) = e^7.6705797 = 2144.47
  EXPECT_NEAR(cf::D_f_continuum(0.931, 4096, 0.9), 2144.47, 0.05);
  EXPECT_NEAR(cf::D_f_continuum(0.931, 4096, 0.9), 2145, 1.0);
}

TEST(ClosedForms, DfContinuumGammaOneLimit) {
  // N^f = 4096^0.9 = 2^10.8 = 1782.8876
  EXPECT_NEAR(cf::D_f_continuum(1.0, 4096, 0.9), 1782.8876, 1e-3);
  // Continuity on both sides of the limit (the formula, not the special case).
  EXPECT_NEAR(cf::D_f_continuum(1.0 + 1e-6, 4096, 0.9), 1782.8876, 0.05);
  EXPECT_NEAR(cf::D_f_continuum(1.0 - 1e-6, 4096, 0.9), 1782.8876, 0.05);
}

TEST(ClosedForms, DfDiscreteMatchesBruteForce) {
  // Hand cases. γ = 0: every position weighs 1; f·N = 5 → D = 5, f·N = 5.5 → D = 6.
  EXPECT_EQ(cf::D_f_discrete(0.0, 10, 0.5), 5);
  EXPECT_EQ(cf::D_f_discrete(0.0, 10, 0.55), 6);
  // γ = 1, N = 4: H_4 = 2.0833; half is 1.0417 > 1 = H_1, ≤ 1.5 = H_2 → D = 2.
  EXPECT_EQ(cf::D_f_discrete(1.0, 4, 0.5), 2);
  // The DESIGN example's discrete counterpart (2074, by a separate Python loop).
  EXPECT_EQ(cf::D_f_discrete(0.931, 4096, 0.9), 2074);
  for (double g : {0.5, 0.931, 1.0, 1.3}) {
    const int N = 3000;
    double total = 0;
    for (int d = 1; d <= N; ++d) total += std::pow(d, -g);
    double part = 0;
    int D = 0;
    while (part < 0.9 * total) part += std::pow(++D, -g);
    EXPECT_EQ(cf::D_f_discrete(g, N, 0.9), D) << "gamma=" << g;
  }
}

TEST(ClosedForms, GammaRandomPred) {
  EXPECT_DOUBLE_EQ(cf::gamma_random_pred(0.75, 14), 0.75);  // log10(1) = 0
  // log10(140/14) = 1; ν = −1/(2π) = −0.1591549431
  EXPECT_NEAR(cf::gamma_random_pred(0.75, 140), 0.5908450569, 1e-9);
}

TEST(ClosedForms, RegimeBands) {
  EXPECT_EQ(cf::regime(0.781).code, "A");
  EXPECT_EQ(cf::regime(1.064).code, "B");
  EXPECT_EQ(cf::regime(1.002).code, "boundary");
  EXPECT_EQ(cf::regime(0.95).code, "boundary");
  EXPECT_EQ(cf::regime(1.05).code, "boundary");
  EXPECT_FALSE(cf::regime(0.5).description.empty());
}

TEST(ClosedForms, DomainErrorsNameTheInput) {
  EXPECT_NE(error_of([] { cf::gamma_pade(0, 100); }).find("theta"), std::string::npos);
  EXPECT_NE(error_of([] { cf::gamma_exp(1e4, -1); }).find("T"), std::string::npos);
  EXPECT_NE(error_of([] { cf::theta_design(1.0, 100); }).find("gamma"), std::string::npos);
  EXPECT_NE(error_of([] { cf::theta_design(-1.0, 100); }).find("gamma"), std::string::npos);
  EXPECT_NE(error_of([] { cf::d_horizon(1e4, -1.0); }).find("gamma"), std::string::npos);
  EXPECT_NE(error_of([] { cf::D_f_continuum(0.9, 4096, 1.0); }).find("f must"), std::string::npos);
  EXPECT_NE(error_of([] { cf::D_f_discrete(0.9, 4096, 0.0); }).find("f must"), std::string::npos);
  EXPECT_NE(error_of([] { cf::D_f_discrete(0.9, 0, 0.5); }).find("N must"), std::string::npos);
  EXPECT_NE(error_of([] { cf::theta_ntk_aware(1e4, 2, 2); }).find("d_head"), std::string::npos);
  EXPECT_NE(error_of([] { cf::gamma_random_pred(0.8, 0); }).find("params_M"), std::string::npos);
  EXPECT_NE(error_of([] { cf::regime(NAN); }).find("gamma"), std::string::npos);
  EXPECT_NE(error_of([] { cf::alpha_opt(1e4, 4096, 1.0); }).find("gamma_target"), std::string::npos);
}

TEST(ClosedFormsPredict, OnlyKeysWithInputs) {
  cf::PredictInputs in;
  in.theta = 1e4;
  in.T = 2048;
  const auto j = cf::predict(in);
  EXPECT_NEAR(j["gamma_pade"].get<double>(), 0.747006443, 1e-9);
  EXPECT_NEAR(j["d_horizon"].get<double>(), 2048, 1e-9);           // from γ_Padé
  EXPECT_NEAR(j["theta_design"].get<double>(), 17860.574, 1e-3);   // γ_t = 0.85 at T = 2048
  EXPECT_EQ(j["regime"]["code"], "A");
  for (const char* absent : {"alpha_opt", "theta_ntk", "D_f_discrete", "D_f_continuum", "gamma_random_pred"})
    EXPECT_FALSE(j.contains(absent)) << absent;
  EXPECT_EQ(j["inputs"]["theta"], 1e4);
}

TEST(ClosedFormsPredict, AlphaAndKvWindow) {
  cf::PredictInputs in;
  in.theta = 1e4;
  in.L = 4096;
  in.d_head = 64;
  in.gamma = 0.931;
  in.N = 4096;
  const auto j = cf::predict(in);
  EXPECT_NEAR(j["alpha_opt"].get<double>(), 3.5721149, 1e-6);
  EXPECT_FALSE(j["alpha_needs_finetuning"].get<bool>());
  EXPECT_NEAR(j["theta_ntk"].get<double>(), 35721.149, 1e-3);
  // θ·α^(64/62): ln 3.5721149 = 1.2731578; × 64/62 = 1.3142274; 1e4 · e^1.3142274 = 37218.745
  EXPECT_NEAR(j["theta_ntk_aware"].get<double>(), 37218.745, 1e-2);
  EXPECT_EQ(j["D_f_discrete"].get<int64_t>(), 2074);
  EXPECT_NEAR(j["D_f_continuum"].get<double>(), 2144.47, 0.05);
  EXPECT_EQ(j["inputs"]["f"], 0.9);  // the default is echoed where it was applied

  in.L = 32768;  // α = 8 · 3.5721 = 28.58 > 8
  EXPECT_TRUE(cf::predict(in)["alpha_needs_finetuning"].get<bool>());
}

TEST(ClosedFormsPredict, UndefinedFormulaIsNullWithNote) {
  cf::PredictInputs in;
  in.theta = 1e4;
  in.T = 2048;
  in.gamma = 1.06;  // measured γ > 1: no positive horizon
  const auto j = cf::predict(in);
  EXPECT_TRUE(j["d_horizon"].is_null());
  EXPECT_TRUE(j["theta_design"].is_null());
  EXPECT_EQ(j["regime"]["code"], "B");
  ASSERT_TRUE(j.contains("notes"));
  EXPECT_NE(j["notes"].dump().find("d_horizon"), std::string::npos);
}

TEST(ClosedFormsPredict, BadInputsThrow) {
  cf::PredictInputs in;
  in.gamma = 0.9;
  in.N = 4096;
  in.f = 1.5;
  EXPECT_NE(error_of([&] { cf::predict(in); }).find("--f"), std::string::npos);
  in.f.reset();
  in.N = 10.5;
  EXPECT_NE(error_of([&] { cf::predict(in); }).find("--N"), std::string::npos);
  in.N.reset();
  in.theta = -3;
  EXPECT_NE(error_of([&] { cf::predict(in); }).find("--theta"), std::string::npos);
}

// Liu et al. 2023 by hand, d = 32, T_train = 128: log_θ(128/2π) = ln 20.37183 /
// ln θ; θ = 1e4: 3.014155 / 9.210340 = 0.327261, ×16 = 5.236 → ⌈⌉ 6 → d_extra
// 12, T_extra = 2π·1e4^(12/32) = 2π·31.62278 = 198.6918; θ = 1e2: 0.654515 ×16
// = 10.47 → 22, T_extra = 2π·100^(22/32) = 2π·23.71374 = 148.998; θ = 1e6:
// 0.218172 ×16 = 3.49 → 8, T_extra = 2π·1e6^(1/4) = 198.6918. The base for L =
// 512 at θ = 1e4: (512/2π)^(32/12) = 81.48733^2.6667 = 1.24807e5, α = 12.4807.
TEST(ExtrapolationLaws, LiuByHand) {
  namespace ex = ropelab::extrapolation;
  EXPECT_EQ(ex::liu_critical_dim(1e4, 32, 128), 12);
  EXPECT_EQ(ex::liu_critical_dim(1e2, 32, 128), 22);
  EXPECT_EQ(ex::liu_critical_dim(1e6, 32, 128), 8);
  EXPECT_NEAR(ex::liu_T_extra(1e4, 32, 128), 198.6918, 1e-3);
  EXPECT_NEAR(ex::liu_T_extra(1e2, 32, 128), 148.998, 1e-3);
  EXPECT_NEAR(ex::liu_T_extra(1e6, 32, 128), 198.6918, 1e-3);
  EXPECT_NEAR(ex::liu_ntk_factor(1e4, 32, 128, 512), 12.4807, 1e-3);
  // Solving T_extra = L: at that base the critical dimension's period is L.
  const double base = ex::liu_base_for_length(1e4, 32, 128, 512);
  EXPECT_NEAR(2 * M_PI * std::pow(base, 12.0 / 32), 512, 1e-9);
  // A base below T_train/2π: every dimension completes a period; d_extra is capped at d.
  EXPECT_EQ(ex::liu_critical_dim(2, 32, 128), 32);
  EXPECT_THROW(ex::liu_critical_dim(1e4, 31, 128), ropelab::Error);
  EXPECT_THROW(ex::liu_critical_dim(1e4, 32, 6), ropelab::Error);
  EXPECT_THROW(ex::liu_base_for_length(1e4, 32, 128, 3), ropelab::Error);
}

// Men et al. 2024. d = 4: B(m) = cos m + cos(m/√θ). For L = 2, m = 2 needs
// cos(2/√θ) >= −cos 2 = cos(π − 2), so θ >= (2/(π − 2))² = 3.0692881 (m = 1 then
// holds too). B is not monotone in θ: at θ = (2/(2π))², cos(2/√θ) = 1 but m = 1
// gives cos 1 + cos π < 0. d = 2: B = cos m < 0 at m = 2 for every θ.
TEST(ExtrapolationLaws, MenByHand) {
  namespace ex = ropelab::extrapolation;
  EXPECT_NEAR(ex::men_B(9, 4, 2), std::cos(2.0) + std::cos(2.0 / 3), 1e-15);
  EXPECT_NEAR(*ex::men_least_base(4, 2), 4 / ((M_PI - 2) * (M_PI - 2)), 1e-6);
  EXPECT_EQ(ex::men_first_violation(1 / (M_PI * M_PI), 4, 2), std::optional<int64_t>(1));
  EXPECT_FALSE(ex::men_least_base(2, 2));
  EXPECT_TRUE(ex::men_least_base(2, 1));  // cos 1 > 0: θ = 1 already holds
  EXPECT_DOUBLE_EQ(*ex::men_least_base(2, 1), 1.0);
  // The first violation against the direct sum (d = 32, θ = 1e4; 474 found by an
  // independent numpy scan), and the least base is where the bound starts to hold.
  EXPECT_EQ(ex::men_first_violation(1e4, 32, 100000), std::optional<int64_t>(474));
  EXPECT_GE(ex::men_B(1e4, 32, 473), 0);
  EXPECT_LT(ex::men_B(1e4, 32, 474), 0);
  const double least = *ex::men_least_base(32, 128);
  EXPECT_NEAR(least, 1217.698, 0.01);  // the numpy scan's value
  EXPECT_FALSE(ex::men_first_violation(least, 32, 128));
  EXPECT_TRUE(ex::men_first_violation(least * 0.999, 32, 128));
  // Their fit at d = 128 (0.0424·L^1.628 = 32232 at L = 4096) within a factor 1.5.
  const double at4k = *ex::men_least_base(128, 4096);
  EXPECT_GT(at4k, 32232 / 1.5);
  EXPECT_LT(at4k, 32232 * 1.5);
  EXPECT_THROW(ex::men_least_base(5, 10), ropelab::Error);
  EXPECT_THROW(ex::men_least_base(32, 0), ropelab::Error);
}

// The D_f window's power-law mass, by hand at γ = 1, N = 4: Σ 1/d = 1 + 1/2 +
// 1/3 + 1/4 = 25/12; D = 2 keeps 1.5 → 0.72; with 1 sink (d = 4) 1.75 → 0.84.
TEST(ClosedForms, PowerLawMassByHand) {
  EXPECT_NEAR(cf::power_law_mass(1.0, 4, 2, 0), 1.5 / (25.0 / 12), 1e-12);
  EXPECT_NEAR(cf::power_law_mass(1.0, 4, 2, 1), 1.75 / (25.0 / 12), 1e-12);
  EXPECT_NEAR(cf::power_law_mass(1.0, 4, 3, 2), 1.0, 1e-12);  // window and sinks overlap: counted once
  EXPECT_NEAR(cf::power_law_mass(0.0, 100, 10, 4), 0.14, 1e-12);
  // D_f's window holds at least f of the mass, by construction.
  const int64_t D = cf::D_f_discrete(0.8, 1000, 0.9);
  EXPECT_GE(cf::power_law_mass(0.8, 1000, D, 0), 0.9);
  EXPECT_LT(cf::power_law_mass(0.8, 1000, D - 1, 0), 0.9);
  EXPECT_THROW(cf::power_law_mass(1.0, 4, 5, 0), ropelab::Error);
}

TEST(ClosedFormsPredict, LiuAndMenBesideTaf) {
  cf::PredictInputs in;
  in.theta = 1e4;
  in.d_head = 32;
  in.T_train = 128;
  in.L = 512;
  const auto out = cf::predict(in);
  EXPECT_EQ(out["liu_critical_dim"], 12);
  EXPECT_NEAR(out["liu_ntk_factor"].get<double>(), 12.4807, 1e-3);
  EXPECT_NEAR(out["men_least_base_for_L"].get<double>(), 12487.2278, 0.01);  // the numpy scan's value
  EXPECT_EQ(out["men_theta_holds_at_L"], false);
  EXPECT_EQ(out["men_first_violation"], 474);
  EXPECT_TRUE(out.contains("alpha_opt"));
}
