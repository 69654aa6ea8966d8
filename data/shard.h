// Token shards on disk. ropelab's own format is a 64-byte header
//   magic "RLTOKENS" | u32 version=1 | u32 token_bytes (2|4) | u64 n_tokens |
//   u32 vocab_size | zero padding to 64 bytes
// followed by n_tokens little-endian uint16 (vocab <= 65536) or uint32 ids.
// llm.c's .bin shards (256 x int32 header, magic 20240520 v1 uint16 or
// 20240801 v7 uint32) are read as well.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ropelab::data {

// Token width a vocabulary needs: 2 bytes while every id fits in uint16.
uint32_t token_bytes_for_vocab(uint64_t vocab_size);

// Writes atomically. Throws if an id is >= vocab_size or the width is too
// small for the vocabulary ("vocabulary too large for uint16").
void write_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                 uint64_t vocab_size, uint32_t token_bytes = 0 /* 0: choose */);

// A memory-mapped, validated, read-only shard (either format).
class Shard {
 public:
  explicit Shard(const std::string& path);
  ~Shard();
  Shard(Shard&&) noexcept;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  Shard& operator=(Shard&&) = delete;

  uint64_t size() const { return n_tokens_; }
  uint64_t vocab_size() const { return vocab_size_; }  // 0 when the file does not say (llm.c)
  uint32_t token_bytes() const { return token_bytes_; }
  const std::string& path() const { return path_; }
  std::string format() const { return llmc_ ? "llm.c" : "ropelab"; }
  uint32_t at(uint64_t i) const;
  // Copies tokens [start, start+n) into out as int64 (what embeddings take).
  void copy(uint64_t start, uint64_t n, int64_t* out) const;
  uint32_t max_token() const;  // scans the shard

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;
  uint64_t n_tokens_ = 0, vocab_size_ = 0;
  uint32_t token_bytes_ = 2;
  bool llmc_ = false;
};

}  // namespace ropelab::data
