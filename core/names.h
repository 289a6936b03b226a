// core/names.h: one name table per enum, and the to-string and parse that read it, so an enum's
// names are written once. A table lists each value with its name; a value listed again later gets
// an alias that parses to it (to_string gives the first name, error messages list first names).
//
// For example, with kDTypeNames = {{kBF16, "bf16"}, {kF16, "fp16"}, {kF32, "fp32"},
// {kBF16, "bfloat16"}, ...}: name_of(kDTypeNames, kBF16) is "bf16", "bfloat16" parses to kBF16,
// and parse_named(kDTypeNames, "bf17", "dtype") says "unknown dtype 'bf17' (expected bf16, fp16
// or fp32)".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

namespace spattn::core {

template <typename E>
struct Named {
  E value;
  const char* name;
};

// The first name of `value`, or "?" for a value the table lacks.
template <typename E, std::size_t N>
constexpr const char* name_of(const Named<E> (&table)[N], E value) {
  for (const Named<E>& n : table)
    if (n.value == value) return n.name;
  return "?";
}

// "a, b or c": the first name of each value, in table order.
template <typename E, std::size_t N>
std::string name_list(const Named<E> (&table)[N]) {
  std::string out;
  std::size_t listed = 0, total = 0;
  for (std::size_t i = 0; i < N; ++i) total += name_of(table, table[i].value) == table[i].name;
  for (std::size_t i = 0; i < N; ++i) {
    if (name_of(table, table[i].value) != table[i].name) continue;  // an alias
    if (listed > 0) out += listed + 1 == total ? " or " : ", ";
    out += table[i].name;
    ++listed;
  }
  return out;
}

// The value named `s` (a first name or an alias); InvalidArgument "unknown WHAT 's' (expected
// ...)" otherwise.
template <typename E, std::size_t N>
Expected<E> parse_named(const Named<E> (&table)[N], std::string_view s, std::string_view what) {
  for (const Named<E>& n : table)
    if (s == n.name) return n.value;
  return invalid_argument("unknown " + std::string(what) + " '" + std::string(s) + "' (expected " +
                          name_list(table) + ")");
}

}  // namespace spattn::core
