#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "common/io.h"

namespace ropelab::data {
namespace {
constexpr char kMagic[8] = {'R', 'L', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr size_t kHeaderBytes = 64;
constexpr size_t kLlmcHeaderBytes = 256 * 4;
constexpr int32_t kLlmcMagicGpt2 = 20240520, kLlmcMagicLlama3 = 20240801;

template <typename T>
void put(std::string& buf, size_t off, T v) { std::memcpy(&buf[off], &v, sizeof v); }
template <typename T>
T get(const unsigned char* p, size_t off) { T v; std::memcpy(&v, p + off, sizeof v); return v; }
}  // namespace

uint32_t token_bytes_for_vocab(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

void write_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                 uint64_t vocab_size, uint32_t token_bytes) {
  if (token_bytes == 0) token_bytes = token_bytes_for_vocab(vocab_size);
  if (token_bytes != 2 && token_bytes != 4)
    throw Error(path + ": token width must be 2 or 4 bytes, got " + std::to_string(token_bytes));
  if (token_bytes == 2 && vocab_size > 65536)
    throw Error(path + ": vocabulary of " + std::to_string(vocab_size) +
                " is too large for uint16 tokens (max 65536); use uint32");
  std::string buf(kHeaderBytes + tokens.size() * token_bytes, '\0');
  std::memcpy(&buf[0], kMagic, 8);
  put<uint32_t>(buf, 8, 1);
  put<uint32_t>(buf, 12, token_bytes);
  put<uint64_t>(buf, 16, tokens.size());
  put<uint32_t>(buf, 24, static_cast<uint32_t>(vocab_size));
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= vocab_size)
      throw Error(path + ": token id " + std::to_string(tokens[i]) + " at position " +
                  std::to_string(i) + " is outside the vocabulary of " + std::to_string(vocab_size));
    if (token_bytes == 2) put<uint16_t>(buf, kHeaderBytes + 2 * i, static_cast<uint16_t>(tokens[i]));
    else put<uint32_t>(buf, kHeaderBytes + 4 * i, tokens[i]);
  }
  io::write_atomic(path, buf);
}

Shard::Shard(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open shard: " + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  map_bytes_ = static_cast<size_t>(st.st_size);
  if (map_bytes_ < 8) {
    ::close(fd);
    throw Error(path + ": not a token shard (file is " + std::to_string(map_bytes_) + " bytes)");
  }
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw Error(path + ": cannot map shard: " + std::strerror(errno));
  }
  const auto* p = static_cast<const unsigned char*>(map_);
  size_t header = 0;
  if (std::memcmp(p, kMagic, 8) == 0) {
    if (map_bytes_ < kHeaderBytes) throw Error(path + ": truncated shard header");
    const auto version = get<uint32_t>(p, 8);
    if (version != 1) throw Error(path + ": unsupported shard version " + std::to_string(version));
    token_bytes_ = get<uint32_t>(p, 12);
    n_tokens_ = get<uint64_t>(p, 16);
    vocab_size_ = get<uint32_t>(p, 24);
    header = kHeaderBytes;
  } else if (get<int32_t>(p, 0) == kLlmcMagicGpt2 || get<int32_t>(p, 0) == kLlmcMagicLlama3) {
    if (map_bytes_ < kLlmcHeaderBytes) throw Error(path + ": truncated llm.c shard header");
    llmc_ = true;
    const auto version = get<int32_t>(p, 4);
    token_bytes_ = version == 1 ? 2 : version == 7 ? 4 : 0;
    if (token_bytes_ == 0) throw Error(path + ": unknown llm.c shard version " + std::to_string(version));
    const int32_t count = get<int32_t>(p, 8);
    if (count < 0) throw Error(path + ": corrupt llm.c shard header (token count " + std::to_string(count) + ")");
    n_tokens_ = static_cast<uint64_t>(count);
    header = kLlmcHeaderBytes;
  } else {
    throw Error(path + ": not a token shard (unknown magic; expected ropelab RLTOKENS or llm.c)");
  }
  if (token_bytes_ != 2 && token_bytes_ != 4)
    throw Error(path + ": corrupt header (token width " + std::to_string(token_bytes_) + ")");
  // Checked by division first: a count near 2^64 / token_bytes would wrap the
  // byte count around to the file's size, and the tokens be read past the map.
  const uint64_t room = (map_bytes_ - header) / token_bytes_;
  if (n_tokens_ > room)
    throw Error(path + ": truncated shard: header promises " + std::to_string(n_tokens_) +
                " tokens but the file has room for " + std::to_string(room));
  const uint64_t expect = header + n_tokens_ * token_bytes_;
  if (map_bytes_ != expect)
    throw Error(path + ": truncated or padded shard: header promises " + std::to_string(n_tokens_) +
                " tokens (" + std::to_string(expect) + " bytes) but the file has " +
                std::to_string(map_bytes_) + " bytes");
  tokens_ = p + header;
}

Shard::Shard(Shard&& o) noexcept
    : path_(std::move(o.path_)), map_(o.map_), map_bytes_(o.map_bytes_), tokens_(o.tokens_),
      n_tokens_(o.n_tokens_), vocab_size_(o.vocab_size_), token_bytes_(o.token_bytes_), llmc_(o.llmc_) {
  o.map_ = nullptr;
}

Shard::~Shard() {
  if (map_) ::munmap(map_, map_bytes_);
}

uint32_t Shard::at(uint64_t i) const {
  return token_bytes_ == 2 ? get<uint16_t>(tokens_, 2 * i) : get<uint32_t>(tokens_, 4 * i);
}

void Shard::copy(uint64_t start, uint64_t n, int64_t* out) const {
  for (uint64_t i = 0; i < n; ++i) out[i] = at(start + i);
}

uint32_t Shard::max_token() const {
  uint32_t m = 0;
  for (uint64_t i = 0; i < n_tokens_; ++i) m = std::max(m, at(i));
  return m;
}

}  // namespace ropelab::data
