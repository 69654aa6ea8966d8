// Training windows drawn from memory-mapped shards.
//
// A window is a pure function of (seed, step, global sample index), so a run
// resumed at step s sees exactly the windows an uninterrupted run sees, and
// rank r of W ranks with micro-batch b reads global samples
// (micro*W + r)*b + i: the same set one rank with micro-batch W*b reads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"

namespace ropelab::data {

class TokenStream {
 public:
  explicit TokenStream(const std::vector<std::string>& shard_paths);
  uint64_t size() const { return total_; }
  uint64_t vocab_size() const;  // the largest vocab any header states (0 if none do)
  // Copies tokens [start, start+n) of the concatenated shards.
  void copy(uint64_t start, uint64_t n, int64_t* out) const;

 private:
  std::vector<Shard> shards_;
  std::vector<uint64_t> offsets_;  // first global index of each shard
  uint64_t total_ = 0;
};

// Fills out[0 .. B*(T+1)) with B windows of T+1 tokens (inputs + next-token
// targets) for training step `step`, global samples first_sample .. +B-1.
void sample_windows(const TokenStream& s, uint64_t seed, int64_t step, int64_t first_sample,
                    int64_t B, int64_t T, int64_t* out);

// Validation windows: consecutive, non-overlapping, fixed for a run.
// Returns how many of the B requested windows fit (batch `batch_index`).
int64_t validation_windows(const TokenStream& s, int64_t batch_index, int64_t B, int64_t T,
                           int64_t* out);

// Uniform random token ids in [0, vocab): the γ protocol's random corpus.
std::vector<int64_t> random_tokens(uint64_t n, uint64_t vocab, uint64_t seed);

// splitmix64: the one hash behind every deterministic draw in data/.
uint64_t mix64(uint64_t x);

}  // namespace ropelab::data
