// GPT-2's byte-to-unicode map, written out here from its definition (not
// taken from data/bpe_tokenizer.cpp), for tests that write tokenizer.json files.
#pragma once
#include <string>

namespace ropelab::test {

// Printable bytes stand for themselves, the other 68 become U+0100.. in order.
inline std::string byte_char(int b) {
  auto printable = [](int k) { return (k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF); };
  int cp = b;
  if (!printable(b)) {
    int n = 0;
    for (int k = 0; k < b; ++k) n += !printable(k);
    cp = 0x100 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// A token in the byte-level alphabet: "Ġ" for space, "Ċ" for newline.
inline std::string bl(const std::string& raw) {
  std::string s;
  for (unsigned char c : raw) s += byte_char(c);
  return s;
}

}  // namespace ropelab::test
