#include "data/loader.h"

#include <algorithm>

#include "common/error.h"

namespace ropelab::data {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

TokenStream::TokenStream(const std::vector<std::string>& paths) {
  if (paths.empty()) throw Error("no token shards given");
  for (const auto& p : paths) {
    shards_.emplace_back(p);
    offsets_.push_back(total_);
    total_ += shards_.back().size();
  }
}

uint64_t TokenStream::vocab_size() const {
  uint64_t v = 0;
  for (const auto& s : shards_) v = std::max(v, s.vocab_size());
  return v;
}

void TokenStream::copy(uint64_t start, uint64_t n, int64_t* out) const {
  if (start + n > total_) throw Error("token range past the end of the shards");
  // Find the shard holding `start`, then walk forward across boundaries.
  size_t k = std::upper_bound(offsets_.begin(), offsets_.end(), start) - offsets_.begin() - 1;
  while (n > 0) {
    const uint64_t local = start - offsets_[k];
    const uint64_t take = std::min(n, shards_[k].size() - local);
    shards_[k].copy(local, take, out);
    out += take; start += take; n -= take; ++k;
  }
}

void sample_windows(const TokenStream& s, uint64_t seed, int64_t step, int64_t first_sample,
                    int64_t B, int64_t T, int64_t* out) {
  const uint64_t span = T + 1;
  if (s.size() <= span)
    throw Error("training data has " + std::to_string(s.size()) + " tokens, fewer than one window of " +
                std::to_string(span));
  const uint64_t n_starts = s.size() - span + 1;
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t h = mix64(mix64(mix64(seed) ^ static_cast<uint64_t>(step)) ^
                             static_cast<uint64_t>(first_sample + b));
    s.copy(h % n_starts, span, out + b * span);
  }
}

int64_t validation_windows(const TokenStream& s, int64_t batch_index, int64_t B, int64_t T,
                           int64_t* out) {
  const uint64_t span = T + 1;
  int64_t got = 0;
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t start = static_cast<uint64_t>(batch_index * B + b) * span;
    if (start + span > s.size()) break;
    s.copy(start, span, out + b * span);
    ++got;
  }
  return got;
}

std::vector<int64_t> random_tokens(uint64_t n, uint64_t vocab, uint64_t seed) {
  if (vocab == 0) throw Error("random_tokens: vocabulary must be positive");
  std::vector<int64_t> out(n);
  uint64_t state = mix64(seed);
  for (auto& t : out) {
    state = mix64(state);
    t = static_cast<int64_t>(state % vocab);
  }
  return out;
}

}  // namespace ropelab::data
