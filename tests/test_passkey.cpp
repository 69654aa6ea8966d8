#include <gtest/gtest.h>

#include "common/error.h"
#include "data/passkey.h"
#include "test_util.h"

using namespace ropelab;
using namespace ropelab::data;

namespace {
const Tokenizer& tokenizer() {
  static const Tokenizer tok = [] {
    const auto dir = ::testing::TempDir() + "ropelab_passkey_tok";
    std::filesystem::create_directories(dir);
    TokenizerSpec spec;
    spec.vocab_size = 400;
    return Tokenizer::train({test::synthetic_text(3000)}, spec, dir + "/t.model");
  }();
  return tok;
}
std::vector<int64_t> haystack(int64_t n) {
  auto ids = tokenizer().encode(test::synthetic_text(400, 7));
  std::vector<int64_t> out(ids.begin(), ids.end());
  out.resize(n);
  return out;
}
std::string text(const std::vector<int64_t>& ids) { return tokenizer().decode(std::vector<int>(ids.begin(), ids.end())); }
}  // namespace

TEST(Passkey, ExactLengthNeedleAtDepthQuestionAtTheEnd) {
  PasskeyBuilder b(tokenizer());
  const auto hay = haystack(600);
  for (double depth : {0.0, 0.5, 1.0}) {
    auto ex = b.make(hay.data(), 300, depth, 42);
    ASSERT_EQ(ex.context.size(), 300u);
    const std::string t = text(ex.context);
    EXPECT_NE(t.find("The pass key is " + ex.key + ". Remember it."), std::string::npos) << t;
    const std::string q = "What is the pass key? The pass key is";
    EXPECT_EQ(t.substr(t.size() - q.size()), q);
    EXPECT_EQ(ex.key.size(), 5u);
    EXPECT_EQ(text(ex.answer), ex.key);
    ASSERT_EQ(ex.wrong.size(), 9u);
    for (const auto& w : ex.wrong) EXPECT_NE(text(w), ex.key);
    // The needle starts at `depth` of the haystack part: 300 minus needle and question.
    const auto needle = tokenizer().encode(" The pass key is " + ex.key + ". Remember it.");
    const auto question = tokenizer().encode(" What is the pass key? The pass key is");
    const double hay_len = 300.0 - needle.size() - question.size();
    EXPECT_EQ(ex.needle_pos, static_cast<int64_t>(depth * hay_len + 0.5)) << "depth " << depth;
    EXPECT_EQ(ex.question_pos, 300 - static_cast<int64_t>(question.size()));
  }
  EXPECT_LT(b.make(hay.data(), 300, 0.0, 1).needle_pos, b.make(hay.data(), 300, 1.0, 1).needle_pos);
  EXPECT_NE(b.make(hay.data(), 300, 0.5, 1).key, b.make(hay.data(), 300, 0.5, 2).key);
}

TEST(Passkey, MultiKeyAsksForOneLabelledNeedle) {
  PasskeyBuilder b(tokenizer());
  const auto hay = haystack(600);
  auto ex = b.make(hay.data(), 400, 0.3, 9, 3);
  const std::string t = text(ex.context);
  int needles = 0;
  for (size_t p = t.find("The pass key of"); p != std::string::npos; p = t.find("The pass key of", p + 1)) ++needles;
  EXPECT_EQ(needles, 3 + 1);  // three needles and the question
  const auto q = t.rfind("What is the pass key of ");
  ASSERT_NE(q, std::string::npos);
  const std::string label = t.substr(q + 24, t.find('?', q) - q - 24);
  EXPECT_NE(t.find("The pass key of " + label + " is " + ex.key + "."), std::string::npos) << t;
}

TEST(Passkey, RefusesImpossibleRequestsByName) {
  PasskeyBuilder b(tokenizer());
  const auto hay = haystack(100);
  EXPECT_THROW(b.make(hay.data(), 10, 0.5, 1), Error);
  EXPECT_THROW(b.make(hay.data(), 100, 1.5, 1), Error);
  for (const char* bad : {"passkey", "passkey:0", "passkey:2", "copy:0.1", "passkey:x"}) EXPECT_THROW(DataMix::parse(bad), Error) << bad;
  EXPECT_DOUBLE_EQ(DataMix::parse("passkey:0.25").passkey_fraction, 0.25);
}

TEST(Passkey, DataMixReplacesAboutTheFractionAndKeepsWindowLength) {
  PasskeyBuilder b(tokenizer());
  const int64_t B = 400, T = 128;
  std::vector<int64_t> windows(B * (T + 1));
  const auto hay = haystack(T + 1);
  for (int64_t i = 0; i < B; ++i) std::copy(hay.begin(), hay.end(), windows.begin() + i * (T + 1));
  const auto n = apply_data_mix(DataMix::parse("passkey:0.25"), b, 5, 3, 0, B, T, windows.data());
  EXPECT_NEAR(n, 100, 30);  // binomial(400, 0.25): sd 8.7
  int64_t changed = 0;
  for (int64_t i = 0; i < B; ++i) {
    std::vector<int64_t> w(windows.begin() + i * (T + 1), windows.begin() + (i + 1) * (T + 1));
    if (w == hay) continue;
    ++changed;
    const std::string t = text(w);
    EXPECT_NE(t.find("The pass key"), std::string::npos);
    // The window ends with the answer: the key the needle states for the asked label
    // (half the examples hide two labelled needles).
    const auto q = t.rfind("What is the pass key");
    ASSERT_NE(q, std::string::npos) << t;
    const std::string label = t.substr(q + 20, t.find('?', q) - q - 20);  // "" or " of apple"
    const auto stated = t.find("The pass key" + label + " is ");
    ASSERT_LT(stated, q) << t;
    const std::string key = t.substr(stated + 16 + label.size(), 5);
    EXPECT_EQ(t.substr(t.size() - 5), key) << t;
  }
  EXPECT_EQ(changed, n);
}
