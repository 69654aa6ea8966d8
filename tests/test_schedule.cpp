#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "train/schedule.h"

using namespace ropelab;
using namespace ropelab::train;

TEST(Schedule, Log2ThenEveryMatchesPythia) {
  auto s = CheckpointSchedule::parse("log2+every:1000");
  std::vector<int64_t> due;
  for (int64_t t = 0; t <= 3000; ++t) if (s.due(t)) due.push_back(t);
  const std::vector<int64_t> expect = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000};
  EXPECT_EQ(due, expect);
}

TEST(Schedule, EveryAndListAndErrors) {
  auto e = CheckpointSchedule::parse("every:50");
  EXPECT_TRUE(e.due(0));
  EXPECT_TRUE(e.due(150));
  EXPECT_FALSE(e.due(149));
  auto l = CheckpointSchedule::parse("list:3,17,100");
  EXPECT_TRUE(l.due(17));
  EXPECT_FALSE(l.due(0));
  for (const char* bad : {"every:0", "every:x", "hourly", "list:1,-2", "log2+list:1"})
    EXPECT_THROW(CheckpointSchedule::parse(bad), Error) << bad;
}

TEST(Schedule, WarmupThenCosine) {
  // warmup 10: step 0 -> lr/10, step 9 -> lr; then cosine from lr (step 10) to min_lr (step 110).
  EXPECT_DOUBLE_EQ(lr_at(0, 1.0, 0.1, 10, 110), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(9, 1.0, 0.1, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(10, 1.0, 0.1, 10, 110), 1.0);
  EXPECT_NEAR(lr_at(60, 1.0, 0.1, 10, 110), 0.55, 1e-12);  // halfway: min + (max-min)/2
  EXPECT_NEAR(lr_at(110, 1.0, 0.1, 10, 110), 0.1, 1e-12);
}
