// Small text helpers the parsers share (plain C++).
#pragma once
#include <nlohmann/json.hpp>
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

inline bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A value from a file inside a message, JSON-quoted: one line whatever it
// holds (newlines escaped, invalid UTF-8 replaced).
inline std::string quoted(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace ropelab::text
