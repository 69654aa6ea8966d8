// Small text helpers the parsers share (plain C++).
#pragma once
#include <sstream>
#include <string>
#include <vector>

namespace ropelab::text {

// "a,b,,c" -> {"a", "b", "", "c"}; a trailing separator adds no empty field
// (std::getline's rule), and "" gives {}.
inline std::vector<std::string> split(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

}  // namespace ropelab::text
