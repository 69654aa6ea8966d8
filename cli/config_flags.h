// The flags (and recipe keys) of a configuration, produced from its field
// declarations (common/config_fields.h).
#pragma once
#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "common/config_fields.h"

namespace ropelab::cli {

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

// One option per field with a flag, bound to `c`, in the option group the
// field names (made on first use; `groups` keeps them across tables). A
// default that is not empty is shown in --help. A list takes its values
// comma-separated (or repeated); a switch is given alone (--per-layer).
template <class C>
void add_config_flags(CLI::App& cmd, C& c, const std::vector<config::Field<C>>& fields,
                      std::map<std::string, CLI::Option_group*>& groups) {
  for (const auto& f : fields) {
    if (!f.flag) continue;
    auto*& group = groups[f.group];
    if (!group) group = cmd.add_option_group(f.group);
    std::visit(
        [&](auto m) {
          using T = std::decay_t<decltype(c.*m)>;
          const std::string name = std::string("--") + f.flag;
          if constexpr (std::is_same_v<T, bool>) {
            if (f.is_switch) {
              group->add_flag(name, c.*m, f.help);
              return;
            }
          }
          CLI::Option* o = group->add_option(name, c.*m, f.help);
          if constexpr (is_vector<T>::value) o->delimiter(',');
          if constexpr (std::is_same_v<T, std::string> || is_vector<T>::value) {
            if (!(c.*m).empty()) o->capture_default_str();
          } else {
            o->capture_default_str();
          }
        },
        f.member);
  }
}

// For each field with a flag not given (on the command line or in a recipe),
// `into` takes `from`'s value.
template <class C>
void take_unset_flags(const CLI::App& cmd, C& into, const C& from, const std::vector<config::Field<C>>& fields) {
  for (const auto& f : fields)
    if (f.flag && cmd.get_option(std::string("--") + f.flag)->count() == 0)
      std::visit([&](auto m) { into.*m = from.*m; }, f.member);
}

}  // namespace ropelab::cli
