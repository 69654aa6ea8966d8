#include "common/run_dir.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ropelab::rundir {

std::string theta_label(double theta) {
  // Shortest form that reads back exactly: 10000 -> 1e4, 250000 -> 2.5e5, 500 -> 500.
  const int e = static_cast<int>(std::floor(std::log10(theta)));
  char buf[64];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, theta / std::pow(10.0, e));
    std::string mant = buf;
    std::string label = e >= 4 ? mant + "e" + std::to_string(e) : "";
    if (label.empty()) {
      std::snprintf(buf, sizeof buf, "%.*g", digits + std::max(e, 0), theta);
      label = buf;
    }
    if (std::stod(label) == theta) return label;
  }
  std::snprintf(buf, sizeof buf, "%.17g", theta);
  return buf;
}

}  // namespace ropelab::rundir
