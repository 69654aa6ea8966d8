// One declaration per configuration field (its JSON key, flag, member,
// flag group, help and rule), from which config.json (to_json, from_json),
// the validation, and the command's flags and recipe keys
// (cli/config_flags.h) are all produced. Plain C++ (no torch, no CLI).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "common/error.h"

namespace ropelab::config {

template <class C>
struct Field {
  using Member = std::variant<int64_t C::*, uint64_t C::*, int C::*, double C::*, bool C::*, std::string C::*,
                              std::vector<std::string> C::*, std::vector<double> C::*, std::vector<int64_t> C::*>;
  struct Rule {
    bool (*ok)(const C&) = nullptr;  // nullptr: any value
    const char* says = "";           // what `ok` wants, after the field's name: "must be > 0"
  };
  const char* key;   // in config.json
  const char* flag;  // the flag and recipe key, without the dashes; nullptr: not a flag
  Member member;
  const char* group = "";  // the flag's group in --help
  const char* help = "";
  Rule rule = {};
  bool optional_in_json = false;  // config.json of older runs lacks it: it keeps its default
  bool is_switch = false;         // a bool flag given alone (--per-layer), not with a value (--qk-norm true)

  std::string name() const { return flag ? flag : key; }  // as messages name it
};

// Every field under its key.
template <class C>
nlohmann::json to_json(const C& c, const std::vector<Field<C>>& fields) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : fields) std::visit([&](auto m) { j[f.key] = c.*m; }, f.member);
  return j;
}

// Reads every field into `c` (an optional one that is absent keeps its
// value); throws Error "WHAT: missing or mistyped field (...)".
template <class C>
void from_json(const nlohmann::json& j, C& c, const std::vector<Field<C>>& fields, const std::string& what) {
  try {
    for (const auto& f : fields) {
      if (f.optional_in_json && j.is_object() && !j.contains(f.key)) continue;
      std::visit([&](auto m) { j.at(f.key).get_to(c.*m); }, f.member);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": missing or mistyped field (" + e.what() + ")");
  }
}

// Throws Error "WHAT: NAME RULE" for the first field whose rule fails.
template <class C>
void validate(const C& c, const std::vector<Field<C>>& fields, const std::string& what) {
  for (const auto& f : fields)
    if (f.rule.ok && !f.rule.ok(c)) throw Error(what + ": " + f.name() + " " + f.rule.says);
}

// For command options: throws Error "--FLAG RULE (got VALUE)" for the first
// field with a flag whose rule fails, as a command's own messages name it.
template <class C>
void check_flags(const C& c, const std::vector<Field<C>>& fields) {
  for (const auto& f : fields) {
    if (!f.flag || !f.rule.ok || f.rule.ok(c)) continue;
    std::string got;
    std::visit([&](auto m) { got = nlohmann::json(c.*m).dump(); }, f.member);
    throw Error(std::string("--") + f.flag + " " + f.rule.says + " (got " + got + ")");
  }
}

}  // namespace ropelab::config
