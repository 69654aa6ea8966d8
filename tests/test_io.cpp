#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/io.h"
#include "test_util.h"

using namespace ropelab;

TEST(Io, Sha256KnownVectors) {
  // FIPS 180-4 examples.
  EXPECT_EQ(io::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(io::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(io::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Io, AtomicWriteLeavesNoTemporary) {
  const auto dir = ropelab::test::scratch_dir();
  io::write_atomic(dir + "/a.txt", "hello");
  EXPECT_EQ(io::read_file(dir + "/a.txt"), "hello");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) { (void)e; ++files; }
  EXPECT_EQ(files, 1);
}

TEST(Io, JsonlSkipsATornLastLineButNotCorruptionInside) {
  const auto dir = ropelab::test::scratch_dir();
  const auto path = dir + "/m.jsonl";
  io::append_jsonl(path, {{"step", 1}});
  io::append_jsonl(path, {{"step", 2}});
  { std::ofstream(path, std::ios::app) << "{\"step\": 3, \"lo"; }  // a kill mid-append
  auto recs = io::read_jsonl(path);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1]["step"], 2);
  ropelab::test::write_text(path, "{\"a\":1}\nnot json\n{\"a\":2}\n");
  try { io::read_jsonl(path); FAIL(); } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("m.jsonl:2"), std::string::npos) << e.what();
  }
}
