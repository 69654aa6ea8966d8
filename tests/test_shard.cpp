#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "test_util.h"

using namespace ropelab;
using namespace ropelab::data;

using ropelab::test::error_of;

TEST(Shard, RoundTripPicksTheNarrowestWidth) {
  const auto dir = ropelab::test::scratch_dir();
  std::vector<uint32_t> toks = {0, 1, 65535, 7};
  write_shard(dir + "/a.bin", toks, 65536);
  Shard a(dir + "/a.bin");
  EXPECT_EQ(a.token_bytes(), 2u);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(a.at(2), 65535u);
  std::vector<uint32_t> big = {70000, 3};
  write_shard(dir + "/b.bin", big, 100000);
  Shard b(dir + "/b.bin");
  EXPECT_EQ(b.token_bytes(), 4u);
  EXPECT_EQ(b.at(0), 70000u);
  EXPECT_EQ(std::filesystem::file_size(dir + "/b.bin"), 64u + 8u);
}

TEST(Shard, RefusesTruncatedForeignAndOversizedInput) {
  const auto dir = ropelab::test::scratch_dir();
  write_shard(dir + "/a.bin", {1, 2, 3, 4, 5}, 10);
  std::filesystem::resize_file(dir + "/a.bin", 64 + 6);  // one token short
  EXPECT_NE(error_of([&] { Shard s(dir + "/a.bin"); }).find("truncated"), std::string::npos);
  ropelab::test::write_text(dir + "/foreign.bin", "PK\x03\x04 this is a zip file, not tokens");
  EXPECT_NE(error_of([&] { Shard s(dir + "/foreign.bin"); }).find("not a token shard"), std::string::npos);
  EXPECT_NE(error_of([&] { write_shard(dir + "/c.bin", {1}, 70000, 2); }).find("too large for uint16"), std::string::npos);
  EXPECT_NE(error_of([&] { write_shard(dir + "/d.bin", {12}, 10); }).find("outside the vocabulary"), std::string::npos);
}

TEST(Shard, ReadsLlmcFormat) {
  const auto dir = ropelab::test::scratch_dir();
  // llm.c: 256 int32 header (magic 20240520, version 1, count), then uint16 tokens.
  std::string buf(256 * 4 + 3 * 2, '\0');
  int32_t hdr[3] = {20240520, 1, 3};
  std::memcpy(&buf[0], hdr, sizeof hdr);
  uint16_t t[3] = {50256, 11, 42};
  std::memcpy(&buf[1024], t, sizeof t);
  ropelab::test::write_text(dir + "/x.bin", buf);
  Shard s(dir + "/x.bin");
  EXPECT_EQ(s.format(), "llm.c");
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.at(0), 50256u);
}

TEST(Shard, AFolderOfLlmcShardsIsUsableAsPreparedData) {
  const auto dir = test::scratch_dir();
  auto llmc = [&](const std::string& name, std::vector<uint16_t> toks) {
    std::string buf(1024 + toks.size() * 2, '\0');
    int32_t hdr[3] = {20240520, 1, static_cast<int32_t>(toks.size())};
    std::memcpy(&buf[0], hdr, sizeof hdr);
    std::memcpy(&buf[1024], toks.data(), toks.size() * 2);
    test::write_text(dir + "/" + name, buf);
  };
  llmc("fineweb_train_000001.bin", {5, 9, 1000});
  llmc("fineweb_val_000000.bin", {7, 3});
  auto p = load_prepared(dir);
  EXPECT_EQ(p.train_shards.size(), 1u);
  EXPECT_EQ(p.val_shards.size(), 1u);
  EXPECT_EQ(p.vocab_size, 1001u);
  EXPECT_NE(error_of([&] { load_prepared(dir + "/nothing"); }).find("no such data directory"), std::string::npos);
}

TEST(Loader, WindowsAreAPureFunctionOfSeedStepAndSample) {
  const auto dir = ropelab::test::scratch_dir();
  std::vector<uint32_t> a(500), b(300);
  for (uint32_t i = 0; i < 500; ++i) a[i] = i % 97;
  for (uint32_t i = 0; i < 300; ++i) b[i] = 97 + i % 3;
  write_shard(dir + "/a.bin", a, 100);
  write_shard(dir + "/b.bin", b, 100);
  TokenStream s({dir + "/a.bin", dir + "/b.bin"});
  EXPECT_EQ(s.size(), 800u);
  std::vector<int64_t> w1(4 * 17), w2(4 * 17), half(2 * 17);
  sample_windows(s, 5, 10, 0, 4, 16, w1.data());
  sample_windows(s, 5, 10, 0, 4, 16, w2.data());
  EXPECT_EQ(w1, w2);
  // Samples 2..3 drawn alone (as rank 1 of 2 would) equal the back half of the batch.
  sample_windows(s, 5, 10, 2, 2, 16, half.data());
  EXPECT_TRUE(std::equal(half.begin(), half.end(), w1.begin() + 2 * 17));
  sample_windows(s, 5, 11, 0, 4, 16, w2.data());
  EXPECT_NE(w1, w2);
  // Windows are contiguous runs of the concatenated shards (crossing the boundary is fine).
  std::vector<int64_t> all(800);
  s.copy(0, 800, all.data());
  for (int b2 = 0; b2 < 4; ++b2) {
    auto it = std::search(all.begin(), all.end(), w1.begin() + b2 * 17, w1.begin() + (b2 + 1) * 17);
    EXPECT_NE(it, all.end());
  }
}

TEST(Loader, RandomTokensAreUniformAndSeeded) {
  auto a = random_tokens(20000, 10, 42), b = random_tokens(20000, 10, 42), c = random_tokens(20000, 10, 43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<int> counts(10);
  for (auto t : a) counts.at(t)++;
  for (int n : counts) EXPECT_NEAR(n, 2000, 200);  // ±4.7 sd of a binomial(20000, 0.1)
}
