// Two published closed forms beside TAF's (theory/closed_forms.h), for the
// same quantities: how far a RoPE model extrapolates and what base (hence
// NTK factor) a context needs. Claims under test, like TAF's.
//
// Liu et al. 2023, "Scaling Laws of RoPE-based Extrapolation":
//   the critical dimension d_extra = 2⌈(d/2)·log_θ(T_train/2π)⌉ (the
//   dimensions whose period fits in the training window; capped at d), and
//   the extrapolation limit T_extra = 2π·θ^(d_extra/d). Solving T_extra = L
//   with d_extra held (the dimensions the model learned) gives the base a
//   length L needs, θ_L = (L/2π)^(d/d_extra), and the NTK factor θ_L/θ.
// Men et al. 2024, "Base of RoPE Bounds Context Length":
//   B(m) = Σ_{i<d/2} cos(m·θ^(−2i/d)) must stay ≥ 0 for every m ≤ L; the
//   least base that keeps it so bounds the context from below (their fit
//   ≈ 0.0424·L^1.628 at d = 128). B is not monotone in θ, so the search
//   scans θ on a log grid from below and refines by bisection only between
//   a failing grid point and the first passing one.
// Every function throws ropelab::Error for input outside its domain.
#pragma once
#include <cstdint>
#include <optional>

namespace ropelab::extrapolation {

// Liu et al.: d_head even >= 2, θ > 1, T_train > 2π.
int liu_critical_dim(double theta, int d_head, double T_train);
double liu_T_extra(double theta, int d_head, double T_train);
double liu_base_for_length(double theta, int d_head, double T_train, double L);  // θ_L
double liu_ntk_factor(double theta, int d_head, double T_train, double L);      // θ_L / θ

// Men et al.: B(m) at one position; whether B(m) >= 0 for every integer m in
// [1, L] (the first m that fails, when one does); and the least base in
// [1, 1e15] for which it holds, nullopt when none does (d_head 2: B = cos m).
double men_B(double theta, int d_head, double m);
std::optional<int64_t> men_first_violation(double theta, int d_head, int64_t L);
std::optional<double> men_least_base(int d_head, int64_t L);

}  // namespace ropelab::extrapolation
