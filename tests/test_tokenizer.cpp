#include <gtest/gtest.h>

#include "common/error.h"
#include "common/io.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_util.h"

using namespace ropelab;
using namespace ropelab::data;

TEST(Tokenizer, TrainsInProcessAndRoundTrips) {
  const auto dir = ropelab::test::scratch_dir();
  TokenizerSpec spec;
  spec.vocab_size = 512;  // 256 byte pieces + 3 specials + the alphabet + merges
  auto tok = Tokenizer::train({ropelab::test::synthetic_text(2000)}, spec, dir + "/t.model");
  // A corpus this small runs out of merge candidates: the vocabulary may stop short.
  EXPECT_LE(tok.vocab_size(), 512);
  EXPECT_GT(tok.vocab_size(), 400);
  const std::string s = "the cat sees a quiet garden. Zebra ünïcödé 字";
  EXPECT_EQ(tok.decode(tok.encode(s)), s);  // byte fallback: nothing becomes <unk>
  // The corpus has ~30 distinct words: with ~220 merges each becomes one piece.
  EXPECT_LE(tok.encode("the cat sees a red house.").size(), 8u);
}

TEST(Prepare, WritesShardsMetaAndRefusesAnExistingDir) {
  const auto dir = ropelab::test::scratch_dir();
  ropelab::test::write_text(dir + "/a.txt", ropelab::test::synthetic_text(3000, 1));
  ropelab::test::write_text(dir + "/b.jsonl", "{\"text\": \"the cat likes the long road.\"}\n{\"text\": \"a dog reads.\"}\n");
  PrepareOptions o;
  o.inputs = {dir + "/a.txt", dir + "/b.jsonl"};
  o.tokenizer.vocab_size = 300;
  o.val_fraction = 0.34;  // every 3rd document held out: b.jsonl's second line
  o.out_dir = dir + "/prep";
  auto meta = prepare_data(o);
  auto p = load_prepared(o.out_dir);
  EXPECT_EQ(p.vocab_size, 300u);
  EXPECT_EQ(meta["documents"]["val"], 1);
  Shard val(p.val_shards.at(0));
  auto tok = Tokenizer::load(p.tokenizer_path);
  std::vector<int> ids;
  for (uint64_t i = 0; i < val.size(); ++i) ids.push_back(val.at(i));
  EXPECT_EQ(ids.back(), tok.eos_id());
  ids.pop_back();
  EXPECT_EQ(tok.decode(ids), "a dog reads.");
  EXPECT_EQ(meta["tokenizer"]["sha256"], io::sha256_hex(io::read_file(p.tokenizer_path)));
  EXPECT_EQ(meta["tokens"]["train"].get<uint64_t>(), Shard(p.train_shards.at(0)).size());
  // Nothing half-written: the out dir exists only complete, and is never overwritten.
  EXPECT_THROW(prepare_data(o), Error);
  // Two documents at the default 2%: one is still held out for validation.
  PrepareOptions few = o;
  few.inputs = {dir + "/a.txt", dir + "/a.txt"};
  few.val_fraction = 0.02;
  few.out_dir = dir + "/few";
  EXPECT_EQ(prepare_data(few)["documents"]["val"], 1);
  // Reusing the tokenizer gives identical shards.
  PrepareOptions o2 = o;
  o2.tokenizer_path = p.tokenizer_path;
  o2.out_dir = dir + "/prep2";
  prepare_data(o2);
  EXPECT_EQ(io::read_file(o.out_dir + "/train_000.bin"), io::read_file(o2.out_dir + "/train_000.bin"));
}
