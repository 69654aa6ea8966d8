// Every input a fuzz target once crashed on, checked in under
// fuzz/regressions/<target>/, replayed through the same reader: each must now
// be refused with a ropelab::Error, one line naming the file (run_one aborts
// otherwise), and never crash, hang or trip a sanitizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/targets.h"

namespace fs = std::filesystem;

TEST(FuzzRegressions, EveryCheckedInInputIsRefusedCleanly) {
  const fs::path root = fs::path(ROPELAB_FUZZ_DIR) / "regressions";
  int replayed = 0;
  for (const auto& t : ropelab::fuzz::targets()) {
    const fs::path dir = root / t.name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.path().extension() == ".md") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const std::string refusal =
          ropelab::fuzz::run_one(t, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      EXPECT_FALSE(refusal.empty()) << t.name << ": " << entry.path() << " was accepted";
      ++replayed;
    }
  }
  std::printf("replayed %d regression inputs\n", replayed);
}

// The seeds are valid inputs (those named refused-* excepted): a fix that
// refuses them refuses what ropelab itself writes or reads today.
TEST(FuzzRegressions, EverySeedIsAccepted) {
  const fs::path root = fs::path(ROPELAB_FUZZ_DIR) / "corpus";
  int seeds = 0;
  for (const auto& t : ropelab::fuzz::targets()) {
    const fs::path dir = root / t.name;
    ASSERT_TRUE(fs::is_directory(dir)) << dir << ": every target needs seeds";
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const std::string refusal =
          ropelab::fuzz::run_one(t, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      if (entry.path().filename().string().rfind("refused-", 0) == 0)
        EXPECT_FALSE(refusal.empty()) << entry.path() << " was accepted";
      else
        EXPECT_EQ(refusal, "") << entry.path();
      ++seeds;
    }
  }
  std::printf("checked %d seeds\n", seeds);
}
