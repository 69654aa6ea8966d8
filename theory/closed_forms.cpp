#include "theory/closed_forms.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "theory/extrapolation_laws.h"

namespace ropelab::closed_forms {
namespace {

const double kSqrt2 = std::sqrt(2.0);
const double kPi = std::acos(-1.0);

std::string num(double x) {
  std::ostringstream s;
  s.precision(10);
  s << x;
  return s.str();
}

void require(bool ok, const std::string& fn, const std::string& what, double got) {
  if (!ok) throw Error(fn + ": " + what + ", got " + num(got));
}
void require_positive(const char* fn, const char* name, double x) {
  require(std::isfinite(x) && x > 0, fn, std::string(name) + " must be a finite number > 0", x);
}
void require_finite(const char* fn, const char* name, double x) {
  require(std::isfinite(x), fn, std::string(name) + " must be finite", x);
}
void require_fraction(const char* fn, double f) {
  require(f > 0 && f < 1, fn, "f must be in (0, 1)", f);
}
// γ = ±1 are the poles of the Padé inverse: θ → ∞ and θ → 0.
void require_open_unit(const char* fn, const char* name, double g) {
  require(g > -1 && g < 1, fn, std::string(name) + " must be in (-1, 1) (γ → 1 means θ → ∞)", g);
}

double z_of(const char* fn, double theta, double T) {
  require_positive(fn, "theta", theta);
  require_positive(fn, "T", T);
  return T * kSqrt2 / theta;
}

}  // namespace

double gamma_pade(double theta, double T) {
  const double z = z_of("gamma_pade", theta, T);
  return (2 - z) / (2 + z);
}
double gamma_linear(double theta, double T) { return 1 - z_of("gamma_linear", theta, T); }
double gamma_lerch(double theta, double T) { return 1 / (1 + z_of("gamma_lerch", theta, T)); }
double gamma_exp(double theta, double T) { return std::exp(-z_of("gamma_exp", theta, T)); }

double theta_design(double gamma, double T) {
  require_open_unit("theta_design", "gamma", gamma);
  require_positive("theta_design", "T", T);
  return T * kSqrt2 * (1 + gamma) / (2 * (1 - gamma));
}

double d_horizon(double theta, double gamma) {
  require_positive("d_horizon", "theta", theta);
  require_open_unit("d_horizon", "gamma", gamma);
  return theta * (1 - gamma) * kSqrt2 / (1 + gamma);
}

double alpha_opt(double theta, double L, double gamma_target) {
  require_positive("alpha_opt", "theta", theta);
  require_positive("alpha_opt", "L", L);
  require_open_unit("alpha_opt", "gamma_target", gamma_target);
  return theta_design(gamma_target, L) / theta;
}

double theta_ntk_plain(double theta, double alpha) {
  require_positive("theta_ntk_plain", "theta", theta);
  require_positive("theta_ntk_plain", "alpha", alpha);
  return alpha * theta;
}

double theta_ntk_aware(double theta, double alpha, int d_head) {
  require_positive("theta_ntk_aware", "theta", theta);
  require_positive("theta_ntk_aware", "alpha", alpha);
  require(d_head > 2, "theta_ntk_aware", "d_head must be > 2", d_head);
  const double d = d_head;
  return theta * std::pow(alpha, d / (d - 2));
}

int64_t D_f_discrete(double gamma, int64_t N, double f) {
  require_finite("D_f_discrete", "gamma", gamma);
  require(N >= 1 && N <= kMaxDiscreteN, "D_f_discrete",
          "N must be in [1, " + std::to_string(kMaxDiscreteN) + "]", static_cast<double>(N));
  require_fraction("D_f_discrete", f);
  // Kahan-compensated long double sums: N terms of very different sizes.
  auto term = [gamma](int64_t d) { return static_cast<long double>(std::pow(double(d), -gamma)); };
  long double total = 0, carry = 0;
  for (int64_t d = 1; d <= N; ++d) {
    const long double y = term(d) - carry, t = total + y;
    carry = (t - total) - y;
    total = t;
  }
  if (!std::isfinite(static_cast<double>(total)))
    throw Error("D_f_discrete: the sum of d^-gamma overflows for gamma = " + num(gamma));
  const long double target = static_cast<long double>(f) * total;
  long double partial = 0;
  carry = 0;
  for (int64_t d = 1; d <= N; ++d) {
    const long double y = term(d) - carry, t = partial + y;
    carry = (t - partial) - y;
    partial = t;
    if (partial >= target) return d;
  }
  return N;  // only reachable through rounding when f is within an ulp of 1
}

double power_law_mass(double gamma, int64_t N, int64_t D, int64_t sinks) {
  require_finite("power_law_mass", "gamma", gamma);
  require(N >= 1 && N <= kMaxDiscreteN, "power_law_mass", "N must be in [1, " + std::to_string(kMaxDiscreteN) + "]",
          static_cast<double>(N));
  require(D >= 1 && D <= N, "power_law_mass", "D must be in [1, N]", static_cast<double>(D));
  require(sinks >= 0 && sinks <= N, "power_law_mass", "sinks must be in [0, N]", static_cast<double>(sinks));
  long double total = 0, kept = 0;
  for (int64_t d = N; d >= 1; --d) {  // smallest terms first
    const long double t = std::pow(static_cast<long double>(d), static_cast<long double>(-gamma));
    total += t;
    if (d <= D || d > N - sinks) kept += t;
  }
  return static_cast<double>(kept / total);
}

double D_f_continuum(double gamma, double N, double f) {
  require_finite("D_f_continuum", "gamma", gamma);
  require(std::isfinite(N) && N >= 1, "D_f_continuum", "N must be a finite number >= 1", N);
  require_fraction("D_f_continuum", f);
  const double g = 1 - gamma;
  if (std::fabs(g) < 1e-9) return std::pow(N, f);  // the documented γ = 1 limit
  // base = 1 + f·(N^g − 1); expm1/log1p keep precision as γ → 1.
  const double log_base = std::log1p(f * std::expm1(g * std::log(N)));
  const double D = std::exp(log_base / g);
  require(std::isfinite(D), "D_f_continuum", "result overflows for gamma", gamma);
  return D;
}

double gamma_random_pred(double gamma_pade_value, double params_M) {
  require_finite("gamma_random_pred", "gamma_pade", gamma_pade_value);
  require_positive("gamma_random_pred", "params_M", params_M);
  const double nu = -1 / (2 * kPi);
  return gamma_pade_value + nu * std::log10(params_M / 14);
}

Regime regime(double gamma) {
  require_finite("regime", "gamma", gamma);
  if (gamma < 0.95)
    return {"A", "heavy tail: far attention, KV cache hard to compress (gamma < 0.95)"};
  if (gamma > 1.05)
    return {"B", "local: attention concentrated near the query (gamma > 1.05)"};
  return {"boundary", "gamma ~ 1: between heavy tail and local (0.95 <= gamma <= 1.05)"};
}

namespace {

// Validates the inputs predict() was given, naming the CLI flag.
void check_inputs(const PredictInputs& in) {
  auto positive = [](const std::optional<double>& v, const char* flag) {
    if (v && !(std::isfinite(*v) && *v > 0))
      throw Error(std::string("predict: ") + flag + " must be a finite number > 0, got " + num(*v));
  };
  positive(in.theta, "--theta");
  positive(in.T, "--T");
  positive(in.L, "--L");
  positive(in.params_M, "--params-M");
  positive(in.T_train, "--T-train");
  if (in.gamma && !std::isfinite(*in.gamma))
    throw Error("predict: --gamma must be finite, got " + num(*in.gamma));
  if (in.gamma_target && !(*in.gamma_target > -1 && *in.gamma_target < 1))
    throw Error("predict: --gamma-target must be in (-1, 1), got " + num(*in.gamma_target));
  if (in.f && !(*in.f > 0 && *in.f < 1))
    throw Error("predict: --f must be in (0, 1), got " + num(*in.f));
  if (in.N && !(*in.N >= 1 && *in.N <= 9e15 && std::floor(*in.N) == *in.N))
    throw Error("predict: --N must be a whole number >= 1, got " + num(*in.N));
  if (in.d_head && !(*in.d_head > 2 && *in.d_head < 1e6 && std::floor(*in.d_head) == *in.d_head))
    throw Error("predict: --d-head must be a whole number > 2, got " + num(*in.d_head));
}

nlohmann::json echo_inputs(const PredictInputs& in) {
  nlohmann::json j = nlohmann::json::object();
  auto put = [&j](const char* key, const std::optional<double>& v) {
    if (v) j[key] = *v;
  };
  put("theta", in.theta);
  put("T", in.T);
  put("L", in.L);
  put("gamma_target", in.gamma_target);
  put("gamma", in.gamma);
  put("N", in.N);
  put("f", in.f);
  put("params_M", in.params_M);
  put("d_head", in.d_head);
  put("T_train", in.T_train);
  return j;
}

}  // namespace

nlohmann::json predict(const PredictInputs& in) {
  check_inputs(in);
  nlohmann::json out = nlohmann::json::object();
  nlohmann::json inputs = echo_inputs(in);
  nlohmann::json notes = nlohmann::json::array();
  const double gamma_target = in.gamma_target.value_or(kDefaultGammaTarget);
  const double f = in.f.value_or(kDefaultMassFraction);

  std::optional<double> g_pade;
  if (in.theta && in.T) {
    g_pade = gamma_pade(*in.theta, *in.T);
    out["gamma_pade"] = *g_pade;
    out["gamma_linear"] = gamma_linear(*in.theta, *in.T);
    out["gamma_lerch"] = gamma_lerch(*in.theta, *in.T);
    out["gamma_exp"] = gamma_exp(*in.theta, *in.T);
  }
  // The measured γ (--gamma) wins over the Padé prediction wherever either fits.
  const std::optional<double> g_use = in.gamma ? in.gamma : g_pade;
  const char* g_src = in.gamma ? "--gamma" : "gamma_pade";

  if (in.T) {
    const double g = in.gamma ? *in.gamma : gamma_target;
    if (!in.gamma) inputs["gamma_target"] = gamma_target;
    if (g > -1 && g < 1) {
      out["theta_design"] = theta_design(g, *in.T);
    } else {
      out["theta_design"] = nullptr;
      notes.push_back("theta_design: undefined for gamma = " + num(g) + " (needs -1 < gamma < 1)");
    }
  }
  if (in.theta && g_use) {
    if (*g_use > -1 && *g_use < 1) {
      out["d_horizon"] = d_horizon(*in.theta, *g_use);
    } else {
      out["d_horizon"] = nullptr;
      notes.push_back(std::string("d_horizon: undefined for ") + g_src + " = " + num(*g_use) +
                      " (needs -1 < gamma < 1)");
    }
  }
  if (in.theta && in.L) {
    const double alpha = alpha_opt(*in.theta, *in.L, gamma_target);
    inputs["gamma_target"] = gamma_target;
    out["alpha_opt"] = alpha;
    out["alpha_needs_finetuning"] = alpha > kFineTuneAlpha;
    out["theta_ntk"] = theta_ntk_plain(*in.theta, alpha);
    if (in.d_head)
      out["theta_ntk_aware"] = theta_ntk_aware(*in.theta, alpha, static_cast<int>(*in.d_head));
  }
  if (g_use && in.N) {
    inputs["f"] = f;
    if (*in.N <= static_cast<double>(kMaxDiscreteN)) {
      out["D_f_discrete"] = D_f_discrete(*g_use, static_cast<int64_t>(*in.N), f);
    } else {
      notes.push_back("D_f_discrete: skipped, N > " + std::to_string(kMaxDiscreteN) +
                      " (exact sum too slow); use D_f_continuum");
    }
    out["D_f_continuum"] = D_f_continuum(*g_use, *in.N, f);
  }
  if (g_pade && in.params_M) out["gamma_random_pred"] = gamma_random_pred(*g_pade, *in.params_M);
  if (in.theta && in.d_head && in.T_train) {
    const int d = static_cast<int>(*in.d_head);
    out["liu_critical_dim"] = extrapolation::liu_critical_dim(*in.theta, d, *in.T_train);
    out["liu_T_extra"] = extrapolation::liu_T_extra(*in.theta, d, *in.T_train);
    if (in.L) {
      out["liu_base_for_L"] = extrapolation::liu_base_for_length(*in.theta, d, *in.T_train, *in.L);
      out["liu_ntk_factor"] = extrapolation::liu_ntk_factor(*in.theta, d, *in.T_train, *in.L);
    }
  }
  if (in.d_head && in.L) {
    const int d = static_cast<int>(*in.d_head);
    const auto L = static_cast<int64_t>(std::ceil(*in.L));
    const auto least = extrapolation::men_least_base(d, L);
    out["men_least_base_for_L"] = least ? nlohmann::json(*least) : nlohmann::json();
    if (!least) notes.push_back("men_least_base_for_L: no base in [1, 1e15] keeps B(m) >= 0 for every m <= L");
    if (in.theta) {
      const auto v = extrapolation::men_first_violation(*in.theta, d, L);
      out["men_theta_holds_at_L"] = !v;
      out["men_first_violation"] = v ? nlohmann::json(*v) : nlohmann::json();
    }
  }
  if (g_use) {
    const Regime r = regime(*g_use);
    out["regime"] = {{"code", r.code}, {"description", r.description}, {"gamma_used", g_src}};
  }
  out["inputs"] = inputs;
  if (!notes.empty()) out["notes"] = notes;
  return out;
}

}  // namespace ropelab::closed_forms
