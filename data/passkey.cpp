#include "data/passkey.h"

#include <algorithm>

#include "common/error.h"
#include "data/loader.h"

namespace ropelab::data {
namespace {
const char* kLabels[] = {"apple", "river", "violet", "copper", "falcon", "marble", "cedar", "harbor"};
constexpr int kMaxKeys = 8;
}  // namespace

PasskeyBuilder::PasskeyBuilder(const Tokenizer& tok, int digits) : tok_(tok), digits_(digits) {}

std::vector<int64_t> PasskeyBuilder::encode(const std::string& s) const {
  const auto ids = tok_.encode(s);
  return {ids.begin(), ids.end()};
}

std::string PasskeyBuilder::random_key(uint64_t& state) const {
  std::string k;
  for (int i = 0; i < digits_; ++i) {
    state = mix64(state);
    k.push_back(static_cast<char>('0' + (i == 0 ? 1 + state % 9 : state % 10)));  // no leading zero
  }
  return k;
}

int64_t PasskeyBuilder::min_length(int n_keys) const {
  const std::string key(digits_, '9');
  int64_t n = encode(" What is the pass key of falcon? The pass key of falcon is").size();
  n += n_keys * encode(" The pass key of falcon is " + key + ". Remember it.").size();
  return n + 8;  // a little haystack around the needles
}

PasskeyExample PasskeyBuilder::make(const int64_t* haystack, int64_t length, double depth, uint64_t seed, int n_keys,
                                    int n_wrong, bool reserve_answer) const {
  if (n_keys < 1 || n_keys > kMaxKeys) throw Error("passkey: n_keys must be 1.." + std::to_string(kMaxKeys));
  if (!(depth >= 0 && depth <= 1)) throw Error("passkey: depth must be in [0, 1], got " + std::to_string(depth));
  uint64_t state = mix64(seed);
  std::vector<std::string> keys;
  for (int i = 0; i < n_keys; ++i) keys.push_back(random_key(state));
  const int asked = n_keys == 1 ? 0 : static_cast<int>(mix64(state ^ 0x5bd1e995) % n_keys);
  auto label = [&](int i) { return n_keys == 1 ? std::string() : std::string(" of ") + kLabels[i]; };
  PasskeyExample ex;
  ex.key = keys[asked];
  ex.answer = encode(" " + ex.key);
  if (reserve_answer) length -= static_cast<int64_t>(ex.answer.size());

  std::vector<std::vector<int64_t>> needles;
  for (int i = 0; i < n_keys; ++i) needles.push_back(encode(" The pass key" + label(i) + " is " + keys[i] + ". Remember it."));
  const auto question = encode(" What is the pass key" + label(asked) + "? The pass key" + label(asked) + " is");
  int64_t fixed = question.size();
  for (const auto& n : needles) fixed += n.size();
  const int64_t hay = length - fixed;
  if (hay < 0)
    throw Error("passkey: a context of " + std::to_string(length) + " tokens cannot hold " + std::to_string(n_keys) +
                " needle(s) and the question (needs " + std::to_string(fixed) + ")");

  // Needle positions within the haystack: the asked one at `depth`, others spread by the seed.
  std::vector<std::pair<int64_t, int>> at;
  for (int i = 0; i < n_keys; ++i) {
    state = mix64(state);
    const double d = i == asked ? depth : double(state % 1000) / 999.0;
    at.push_back({static_cast<int64_t>(d * hay + 0.5), i});
  }
  std::sort(at.begin(), at.end());
  int64_t h = 0;
  for (const auto& [pos, i] : at) {
    ex.context.insert(ex.context.end(), haystack + h, haystack + pos);
    h = pos;
    if (i == asked) ex.needle_pos = ex.context.size();
    ex.context.insert(ex.context.end(), needles[i].begin(), needles[i].end());
  }
  ex.context.insert(ex.context.end(), haystack + h, haystack + hay);
  ex.question_pos = ex.context.size();
  ex.context.insert(ex.context.end(), question.begin(), question.end());
  while (static_cast<int>(ex.wrong.size()) < n_wrong) {
    std::string w = random_key(state);
    if (w != ex.key) ex.wrong.push_back(encode(" " + w));
  }
  return ex;
}

DataMix DataMix::parse(const std::string& spec) {
  DataMix m;
  if (spec.empty() || spec == "none") return m;
  if (spec.rfind("passkey:", 0) != 0) throw Error("data mix \"" + spec + "\": expected passkey:FRACTION");
  size_t used = 0;
  try { m.passkey_fraction = std::stod(spec.substr(8), &used); } catch (...) { used = 0; }
  if (used != spec.size() - 8 || !(m.passkey_fraction > 0 && m.passkey_fraction <= 1))
    throw Error("data mix \"" + spec + "\": the fraction must be a number in (0, 1]");
  return m;
}

int64_t apply_data_mix(const DataMix& mix, const PasskeyBuilder& builder, uint64_t seed, int64_t step,
                       int64_t first_sample, int64_t B, int64_t T, int64_t* windows) {
  if (mix.passkey_fraction <= 0) return 0;
  int64_t replaced = 0;
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t h = mix64(mix64(seed ^ 0x9a55c0de) ^ mix64(uint64_t(step)) ^ uint64_t(first_sample + b));
    if (double(h % 1000000) / 1e6 >= mix.passkey_fraction) continue;
    int64_t* w = windows + b * (T + 1);
    const std::vector<int64_t> hay(w, w + T + 1);
    const int n_keys = 1 + static_cast<int>(mix64(h) % 2);  // half single-key, half two-key examples
    const double depth = double(mix64(h ^ 1) % 1001) / 1000.0;
    const auto ex = builder.make(hay.data(), T + 1, depth, h, n_keys, 0, /*reserve_answer=*/true);
    std::copy(ex.context.begin(), ex.context.end(), w);
    std::copy(ex.answer.begin(), ex.answer.end(), w + ex.context.size());
    ++replaced;
  }
  return replaced;
}

}  // namespace ropelab::data
