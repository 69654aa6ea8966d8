#include "eval/alpha_star.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "eval/niah.h"
#include "theory/extrapolation_laws.h"

namespace ropelab::eval {
namespace {

double accuracy(const AlphaPoint& p) { return p.n > 0 ? double(p.hits) / double(p.n) : NAN; }

// The argmax of the curve (smallest factor on a tie), its interval, and the
// factors whose accuracy reaches that interval's lower bound.
void locate_best(AlphaStar& a) {
  const AlphaPoint* best = nullptr;
  for (const auto& p : a.curve)
    if (!best || accuracy(p) > accuracy(*best)) best = &p;
  const auto ci = wilson95(best->hits, best->n);
  a.best_factor = best->factor;
  a.best_accuracy = accuracy(*best);
  a.best_lo = ci.first, a.best_hi = ci.second;
  a.ties = int(std::count_if(a.curve.begin(), a.curve.end(),
                             [&](const AlphaPoint& p) { return accuracy(p) == a.best_accuracy; }));
  for (const auto& p : a.curve)
    if (accuracy(p) >= a.best_lo) a.near_best.push_back(p.factor);
  if (a.curve.size() >= 2 && a.best_factor == a.curve.back().factor) a.censored = "upper";
  else if (a.curve.size() >= 2 && a.best_factor == a.curve.front().factor) a.censored = "lower";
}

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

// How one closed-form point fared against the curve's best.
nlohmann::json closed_form_json(const AlphaStar& a, const AlphaPoint& p) {
  nlohmann::json j = {{"gamma", finite_or_null(p.gamma)}, {"value", finite_or_null(p.factor)}};
  if (!p.unavailable.empty()) {
    j["unavailable"] = p.unavailable;
    return j;
  }
  const auto ci = wilson95(p.hits, p.n);
  j.update({{"accuracy", accuracy(p)}, {"ci95", {ci.first, ci.second}}, {"n", p.n},
            {"ratio_best_to_value", a.best_factor / p.factor},
            {"within_best_interval", accuracy(p) >= a.best_lo},
            {"inside_near_best_span", p.factor >= a.near_best.front() && p.factor <= a.near_best.back()}});
  return j;
}

}  // namespace

std::vector<AlphaStar> find_alpha_star(const std::vector<AlphaPoint>& points) {
  std::vector<std::string> families;
  std::map<std::string, std::map<int64_t, AlphaStar>> groups;
  for (const auto& p : points) {
    if (!groups.count(p.family)) families.push_back(p.family);
    AlphaStar& a = groups[p.family][p.length];
    a.family = p.family, a.length = p.length;
    if (p.source == "fixed" && p.n > 0) a.curve.push_back(p);
    else if (p.source != "fixed") a.closed_forms.push_back(p);
  }
  std::vector<AlphaStar> out;
  for (const auto& family : families)
    for (auto& [L, a] : groups[family]) {
      std::sort(a.curve.begin(), a.curve.end(), [](const auto& x, const auto& y) { return x.factor < y.factor; });
      if (a.curve.empty() || a.curve.front().factor == a.curve.back().factor) continue;  // no curve
      locate_best(a);
      out.push_back(std::move(a));
    }
  return out;
}

nlohmann::json alpha_star_record(const AlphaStar& a) {
  nlohmann::json factors = nlohmann::json::array(), acc = nlohmann::json::array();
  for (const auto& p : a.curve) factors.push_back(p.factor), acc.push_back(accuracy(p));
  nlohmann::json rec = {{"kind", "alpha_star"}, {"family", a.family}, {"length", a.length},
                        {"factors", factors}, {"rank_accuracies", acc}, {"n", a.curve.front().n},
                        {"best_factor", a.best_factor}, {"best_accuracy", a.best_accuracy},
                        {"best_ci95", {a.best_lo, a.best_hi}}, {"ties", a.ties},
                        {"alpha_star_censored", a.censored.empty() ? nlohmann::json() : nlohmann::json(a.censored)},
                        {"near_best_covers_sweep", a.near_best.size() == a.curve.size()},
                        {"near_best_factors", a.near_best},
                        {"near_best_span", {a.near_best.front(), a.near_best.back()}},
                        {"near_best_rule", "rank accuracy inside the best factor's Wilson 95% interval"}};
  for (const auto& p : a.closed_forms) rec[p.source] = closed_form_json(a, p);
  return rec;
}

namespace {

// The two forms' predictions at base θ' (they need θ' > 1 and T_train > 2π).
struct OtherForms {
  nlohmann::json liu_T_extra, men_longest;
};
OtherForms predict_reach(const RopeShape& rope, double theta_eff, int64_t horizon) {
  OtherForms f;
  if (rope.rotary_dim < 2 || !(theta_eff > 1) || rope.T_train < 7) return f;
  // Liu: the dimensions learned in training (d_extra at the trained θ) keep
  // their count; their period at θ' is the limit.
  const int dx = extrapolation::liu_critical_dim(rope.theta, rope.rotary_dim, double(rope.T_train));
  f.liu_T_extra = 2 * std::acos(-1.0) * std::pow(theta_eff, double(dx) / rope.rotary_dim);
  const auto v = extrapolation::men_first_violation(theta_eff, rope.rotary_dim, horizon);
  f.men_longest = v ? nlohmann::json(*v - 1) : nlohmann::json(">= " + std::to_string(horizon));
  return f;
}

}  // namespace

void add_other_forms(nlohmann::json& rec, const RopeShape& rope) {
  if (rec.value("family", "") != "ntk" || rope.rotary_dim < 2 || !(rope.theta > 1) || rope.T_train < 7) return;
  const double L = rec["length"].get<double>();
  const auto span = rec["near_best_span"];
  auto judged = [&](double alpha) {
    return nlohmann::json{{"value", alpha},
                          {"inside_near_best_span", alpha >= span[0].get<double>() && alpha <= span[1].get<double>()},
                          {"ratio_best_to_value", rec["best_factor"].get<double>() / alpha}};
  };
  nlohmann::json other = {{"note", "NTK factors alpha = theta'/theta that Liu et al. 2023 (T_extra = L) and Men et al. "
                                    "2024 (least base keeping B(m) >= 0 for m <= L) require at this length"}};
  other["liu"] = judged(extrapolation::liu_ntk_factor(rope.theta, rope.rotary_dim, double(rope.T_train), L));
  const auto least = extrapolation::men_least_base(rope.rotary_dim, static_cast<int64_t>(L));
  other["men"] = least ? judged(*least / rope.theta) : nlohmann::json{{"value", nullptr}, {"why", "no base holds"}};
  rec["other_forms"] = other;
}

std::vector<nlohmann::json> reach_records(const std::vector<AlphaPoint>& points, const RopeShape& rope, double chance) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const AlphaPoint*>> by_method;
  for (const auto& p : points) {
    if (p.n == 0) continue;
    if (!by_method.count(p.method)) order.push_back(p.method);
    by_method[p.method].push_back(&p);
  }
  std::vector<nlohmann::json> out;
  for (const auto& method : order) {
    auto pts = by_method[method];
    std::sort(pts.begin(), pts.end(), [](auto* a, auto* b) { return a->length < b->length; });
    nlohmann::json lengths = nlohmann::json::array(), acc = nlohmann::json::array(), lo = nlohmann::json::array();
    nlohmann::json longest;
    for (const auto* p : pts) {
      const auto ci = wilson95(p->hits, p->n);
      lengths.push_back(p->length), acc.push_back(accuracy(*p)), lo.push_back(ci.first);
      if (ci.first > chance) longest = p->length;
    }
    const auto& first = *pts.front();
    nlohmann::json rec = {{"kind", "niah_reach"}, {"method", method}, {"family", first.family},
                          {"alpha_source", first.source}, {"lengths", lengths}, {"rank_accuracies", acc},
                          {"rank_ci95_lo", lo}, {"longest_retrieving_length", longest},
                          {"criterion", "Wilson 95% lower bound of the pooled rank accuracy above chance " +
                                            std::to_string(chance).substr(0, 4)}};
    // Liu and Men predict for an unscaled model or a fixed NTK base θ' = α·θ.
    const bool fixed_base = first.family == "none" || (first.family == "ntk" && first.source == "fixed");
    if (fixed_base) {
      const double alpha = first.family == "none" ? 1.0 : first.factor;
      const auto f = predict_reach(rope, alpha * rope.theta, std::max<int64_t>(64 * rope.T_train, 4 * pts.back()->length));
      rec["predicted_longest"] = {{"theta_effective", alpha * rope.theta}, {"liu_T_extra", f.liu_T_extra},
                                  {"men_first_violation_minus_1", f.men_longest}};
    } else {
      rec["predicted_longest"] = nullptr;
    }
    out.push_back(rec);
  }
  return out;
}

std::string alpha_star_text(const nlohmann::json& r) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g", r["best_factor"].get<double>());
  const auto c = r.value("alpha_star_censored", nlohmann::json());
  if (c == "upper") return std::string("≥ ") + buf;
  if (c == "lower") return std::string("≤ ") + buf;
  return buf;
}

namespace {

std::string cell(const nlohmann::json& rec, const char* form) {
  if (!rec.contains(form)) return "-";
  const auto& c = rec[form];
  char buf[96];
  if (c["value"].is_null()) return "undefined";
  if (!c.contains("accuracy")) {
    std::snprintf(buf, sizeof buf, "%.3g (not run)", c["value"].get<double>());
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.3g: %.2f%s x%.3g", c["value"].get<double>(), c["accuracy"].get<double>(),
                c["within_best_interval"].get<bool>() ? "*" : "", c["ratio_best_to_value"].get<double>());
  return buf;
}

}  // namespace

std::string alpha_star_table(const std::vector<nlohmann::json>& records) {
  std::ostringstream out;
  char line[256];
  for (const auto& r : records) {
    if (r.value("kind", "") != "alpha_star") continue;
    if (out.tellp() == 0) {
      std::snprintf(line, sizeof line, "%-9s %7s %8s %6s %-15s %-24s %-24s\n", "family", "length", "best", "acc",
                    "near-best span", "alpha_opt: acc ratio", "alpha_opt_measured");
      out << line;
    }
    char span[40];
    std::snprintf(span, sizeof span, "%.3g..%.3g", r["near_best_span"][0].get<double>(),
                  r["near_best_span"][1].get<double>());
    std::snprintf(line, sizeof line, "%-9s %7lld %8s %6.2f %-15s %-24s %-24s\n", r["family"].get<std::string>().c_str(),
                  (long long)r["length"].get<int64_t>(), alpha_star_text(r).c_str(),
                  r["best_accuracy"].get<double>(), span, cell(r, "alpha_opt").c_str(),
                  cell(r, "alpha_opt_measured").c_str());
    out << line;
  }
  if (out.tellp() > 0)
    out << "best: argmax rank accuracy (pooled over depths; ≥/≤: at the end of the sweep, so censored); near-best: "
           "accuracy inside the best's Wilson 95% interval;\nclosed forms as value: accuracy (* = inside that interval) "
           "and ratio best/value\n";
  return out.str();
}

}  // namespace ropelab::eval
