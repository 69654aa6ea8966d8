#include "eval/alpha_star.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "eval/niah.h"

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
                        {"near_best_factors", a.near_best},
                        {"near_best_span", {a.near_best.front(), a.near_best.back()}},
                        {"near_best_rule", "rank accuracy inside the best factor's Wilson 95% interval"}};
  for (const auto& p : a.closed_forms) rec[p.source] = closed_form_json(a, p);
  return rec;
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
    std::snprintf(line, sizeof line, "%-9s %7lld %8.3g %6.2f %-15s %-24s %-24s\n", r["family"].get<std::string>().c_str(),
                  (long long)r["length"].get<int64_t>(), r["best_factor"].get<double>(),
                  r["best_accuracy"].get<double>(), span, cell(r, "alpha_opt").c_str(),
                  cell(r, "alpha_opt_measured").c_str());
    out << line;
  }
  if (out.tellp() > 0)
    out << "best: argmax rank accuracy (pooled over depths); near-best: accuracy inside the best's Wilson 95% "
           "interval;\nclosed forms as value: accuracy (* = inside that interval) and ratio best/value\n";
  return out.str();
}

}  // namespace ropelab::eval
