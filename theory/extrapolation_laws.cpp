#include "theory/extrapolation_laws.h"

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"

namespace ropelab::extrapolation {
namespace {

const double kTwoPi = 2 * std::acos(-1.0);

std::string num(double x) {
  std::ostringstream s;
  s.precision(10);
  s << x;
  return s.str();
}

void require(bool ok, const std::string& fn, const std::string& what) {
  if (!ok) throw Error(fn + ": " + what);
}

void check_liu(const char* fn, double theta, int d_head, double T_train) {
  require(d_head >= 2 && d_head % 2 == 0, fn, "d_head must be even and >= 2, got " + std::to_string(d_head));
  require(std::isfinite(theta) && theta > 1, fn, "theta must be > 1, got " + num(theta));
  require(std::isfinite(T_train) && T_train > kTwoPi, fn, "T_train must exceed 2π, got " + num(T_train));
}

void check_men(const char* fn, int d_head, double L) {
  require(d_head >= 2 && d_head % 2 == 0, fn, "d_head must be even and >= 2, got " + std::to_string(d_head));
  require(std::isfinite(L) && L >= 1 && L <= 1e7, fn, "L must be in [1, 1e7], got " + num(L));
}

}  // namespace

int liu_critical_dim(double theta, int d_head, double T_train) {
  check_liu("liu_critical_dim", theta, d_head, T_train);
  const double log_theta = std::log(T_train / kTwoPi) / std::log(theta);
  // Rounded before the ceiling so that an exact integer (d/2)·log_θ stays itself.
  const double half = std::ceil(std::round(d_head / 2.0 * log_theta * 1e9) / 1e9);
  return static_cast<int>(std::min<double>(d_head, 2 * half));
}

double liu_T_extra(double theta, int d_head, double T_train) {
  return kTwoPi * std::pow(theta, double(liu_critical_dim(theta, d_head, T_train)) / d_head);
}

double liu_base_for_length(double theta, int d_head, double T_train, double L) {
  require(std::isfinite(L) && L > kTwoPi, "liu_base_for_length", "L must exceed 2π, got " + num(L));
  const int dx = liu_critical_dim(theta, d_head, T_train);
  return std::pow(L / kTwoPi, double(d_head) / dx);
}

double liu_ntk_factor(double theta, int d_head, double T_train, double L) {
  return liu_base_for_length(theta, d_head, T_train, L) / theta;
}

double men_B(double theta, int d_head, double m) {
  require(d_head >= 2 && d_head % 2 == 0, "men_B", "d_head must be even and >= 2, got " + std::to_string(d_head));
  require(std::isfinite(theta) && theta > 0, "men_B", "theta must be > 0, got " + num(theta));
  double b = 0;
  for (int i = 0; i < d_head / 2; ++i) b += std::cos(m * std::pow(theta, -2.0 * i / d_head));
  return b;
}

std::optional<int64_t> men_first_violation(double theta, int d_head, int64_t L) {
  check_men("men_first_violation", d_head, double(L));
  require(std::isfinite(theta) && theta > 0, "men_first_violation", "theta must be > 0, got " + num(theta));
  std::vector<double> freq(d_head / 2);
  for (int i = 0; i < d_head / 2; ++i) freq[i] = std::pow(theta, -2.0 * i / d_head);
  for (int64_t m = 1; m <= L; ++m) {
    double b = 0;
    for (double w : freq) b += std::cos(double(m) * w);
    if (b < 0) return m;
  }
  return std::nullopt;
}

std::optional<double> men_least_base(int d_head, int64_t L) {
  check_men("men_least_base", d_head, double(L));
  auto holds = [&](double theta) { return !men_first_violation(theta, d_head, L); };
  if (holds(1)) return 1.0;
  // 100 grid points per decade from θ = 1 up; the first that holds, refined
  // by bisection against the grid point below it (which fails).
  const int per_decade = 100;
  double below = 1;
  for (int k = 1; k <= 15 * per_decade; ++k) {
    const double theta = std::pow(10.0, double(k) / per_decade);
    if (!holds(theta)) {
      below = theta;
      continue;
    }
    double lo = below, hi = theta;
    while (hi / lo - 1 > 1e-10) {
      const double mid = std::sqrt(lo * hi);
      (holds(mid) ? hi : lo) = mid;
    }
    return hi;
  }
  return std::nullopt;
}

}  // namespace ropelab::extrapolation
