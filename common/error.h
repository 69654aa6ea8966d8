// The one error type of ropelab: a message a researcher can act on.
// Every user-facing failure (bad file, bad field, bad flag) throws this with
// the file/line/field named; the CLI prints it and exits 2.
#pragma once
#include <stdexcept>
#include <string>

namespace ropelab {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Throws Error(msg) unless `ok`.
inline void need(bool ok, const std::string& msg) {
  if (!ok) throw Error(msg);
}

}  // namespace ropelab
