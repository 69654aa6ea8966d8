// A numeric range check for flags whose refusal is worded by ropelab, not by
// the CLI11 version at hand (2.1 and 2.4 word their CLI::Range differently):
// "--jobs: expected a number from 1 to 256, got 0".
#pragma once
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <sstream>
#include <string>

namespace ropelab::cli {

inline CLI::Validator in_range(double lo, double hi) {
  std::ostringstream range;
  range << lo << " to " << hi;
  const std::string span = range.str();
  return CLI::Validator(
      [lo, hi, span](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end == s.c_str() || *end != '\0' || !(v >= lo && v <= hi))
          return "expected a number from " + span + ", got " + s;
        return {};
      },
      "in " + span);
}

}  // namespace ropelab::cli
