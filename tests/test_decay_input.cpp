// Each input format must carry a planted power law through to the fit, and
// refuse bad rows naming the file and line.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "common/error.h"
#include "theory/decay_input.h"
#include "theory/fit.h"

using ropelab::decay_input::read_decay_curve;

namespace {

const std::vector<int> kDistances = {10, 20, 30, 50, 100, 200, 500, 1000, 2000};
const int kSeeds[] = {42, 123, 7};

// A = 0.3·d^−0.8 with a deterministic ±3 % wobble, different per seed.
double planted(int d, int seed) { return 0.3 * std::pow(d, -0.8) * (1 + 0.03 * std::sin(0.37 * d + seed)); }
double mean_planted(int d) { return (planted(d, 42) + planted(d, 123) + planted(d, 7)) / 3; }

std::string write(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + "ropelab_decay_" + name;
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& path) {
  try {
    read_decay_curve(path);
  } catch (const ropelab::Error& e) {
    return e.what();
  }
  return "<no error>";
}

void expect_planted(const ropelab::decay_input::DecayInput& in) {
  ASSERT_EQ(in.curve.distances.size(), kDistances.size());
  EXPECT_EQ(in.curve.distances.front(), 10);  // ascending whatever the file order
  EXPECT_EQ(in.curve.distances.back(), 2000);
  const auto g = ropelab::fit::fit_gamma(in.curve);
  EXPECT_NEAR(g.gamma, 0.8, 0.03) << in.format;
  EXPECT_LT(g.ci95_lo, 0.8) << in.format;
  EXPECT_GT(g.ci95_hi, 0.8) << in.format;
}

}  // namespace

TEST(DecayInput, TafResultJsonWithSeedArrays) {
  std::ostringstream s;
  s.precision(17);
  s << R"({"model": "EleutherAI/pythia-70m", "theta": 10000, "seeds": [42, 123, 7],)"
    << R"("n_prompts_per_distance": 150, "attn_by_distance": {)";
  for (size_t i = 0; i < kDistances.size(); ++i) {
    const int d = kDistances[i];
    s << (i ? "," : "") << '"' << d << R"(": {"mean_across_seeds": )" << mean_planted(d)
      << R"(, "per_seed_means": [)" << planted(d, 42) << "," << planted(d, 123) << ","
      << planted(d, 7) << "]}";
  }
  s << "}}";
  const auto in = read_decay_curve(write("taf.json", s.str()));
  EXPECT_EQ(in.format, "taf_json");
  EXPECT_EQ(in.model, "EleutherAI/pythia-70m");
  ASSERT_TRUE(in.theta.has_value());
  EXPECT_EQ(*in.theta, 10000);
  EXPECT_EQ(in.n_prompts_per_distance, 150);
  ASSERT_EQ(in.curve.per_seed_A.size(), 3u);
  // Seeds keep the file's order, and each row holds that seed's values.
  EXPECT_EQ(in.curve.seeds, (std::vector<int64_t>{42, 123, 7}));
  EXPECT_DOUBLE_EQ(in.curve.per_seed_A[1][4], planted(100, 123));
  EXPECT_DOUBLE_EQ(in.curve.per_seed_A[2][8], planted(2000, 7));
  expect_planted(in);
  EXPECT_EQ(ropelab::fit::fit_gamma(in.curve).ci_method, "bootstrap_seeds_and_points_percentile");
}

TEST(DecayInput, TafResultJsonWithSeedObjects) {
  std::ostringstream s;
  s.precision(17);
  s << R"({"attn_by_distance": {)";
  for (size_t i = 0; i < kDistances.size(); ++i) {
    const int d = kDistances[kDistances.size() - 1 - i];  // reverse order on purpose
    s << (i ? "," : "") << '"' << d << R"(": {"mean_across_seeds": )" << mean_planted(d)
      << R"(, "per_seed_means": {"42": )" << planted(d, 42) << R"(, "123": )" << planted(d, 123)
      << R"(, "7": )" << planted(d, 7) << "}}";
  }
  s << "}}";
  const auto in = read_decay_curve(write("taf_obj.json", s.str()));
  EXPECT_FALSE(in.theta.has_value());
  EXPECT_EQ(in.curve.seeds, (std::vector<int64_t>{7, 42, 123}));  // object keys: numeric order
  EXPECT_DOUBLE_EQ(in.curve.per_seed_A[0][0], planted(10, 7));
  expect_planted(in);
}

TEST(DecayInput, TafCliJsonPlainMap) {
  std::ostringstream s;
  s.precision(17);
  s << R"({"model": "gpt2", "attn_by_distance": {)";
  for (size_t i = 0; i < kDistances.size(); ++i)
    s << (i ? "," : "") << '"' << kDistances[i] << "\": " << planted(kDistances[i], 42);
  s << "}}";
  const auto in = read_decay_curve(write("cli.json", s.str()));
  EXPECT_EQ(in.format, "taf_cli_json");
  EXPECT_TRUE(in.curve.per_seed_A.empty());
  expect_planted(in);
}

TEST(DecayInput, CsvPlain) {
  std::ostringstream s;
  s.precision(17);
  s << "# measured elsewhere\nDistance,A\n";
  for (int d : kDistances) s << d << "," << planted(d, 7) << "\n";
  const auto in = read_decay_curve(write("plain.csv", s.str()));
  EXPECT_EQ(in.format, "csv");
  expect_planted(in);
}

TEST(DecayInput, CsvWithSeedColumnAnyOrder) {
  std::ostringstream s;
  s.precision(17);
  s << "A,SEED,distance\r\n";
  for (int seed : kSeeds)
    for (int d : kDistances) s << planted(d, seed) << "," << seed << "," << d << "\r\n";
  const auto in = read_decay_curve(write("seeds.csv", s.str()));
  ASSERT_EQ(in.curve.per_seed_A.size(), 3u);
  EXPECT_EQ(in.curve.seeds, (std::vector<int64_t>{42, 123, 7}));
  EXPECT_NEAR(in.curve.A[4], mean_planted(100), 1e-15);
  expect_planted(in);
}

TEST(DecayInput, CsvZeroAIsRefusedWithLine) {
  const std::string path = write("zero.csv", "distance,A\n30,0.02\n50,0.01\n100,0\n200,0.003\n");
  const std::string msg = error_of(path);
  EXPECT_NE(msg.find("ropelab_decay_zero.csv:4: A must be > 0, got 0"), std::string::npos) << msg;
}

TEST(DecayInput, CsvBadRowsNameTheLine) {
  std::string msg = error_of(write("nan.csv", "distance,A\n30,0.02\n50,abc\n"));
  EXPECT_NE(msg.find("nan.csv:3: A is not a number"), std::string::npos) << msg;
  msg = error_of(write("cols.csv", "distance,A\n30,0.02\n\n50,0.01,7\n"));
  EXPECT_NE(msg.find("cols.csv:4: expected 2 fields"), std::string::npos) << msg;
  msg = error_of(write("negd.csv", "distance,A\n-30,0.02\n"));
  EXPECT_NE(msg.find("negd.csv:2: distance must be > 0"), std::string::npos) << msg;
  msg = error_of(write("dup.csv", "distance,A\n30,0.02\n30,0.01\n"));
  EXPECT_NE(msg.find("dup.csv:3: distance 30 repeats line 2"), std::string::npos) << msg;
  msg = error_of(write("hole.csv", "seed,distance,A\n1,30,0.02\n1,50,0.01\n2,30,0.02\n"));
  EXPECT_NE(msg.find("seed 2 has no row for distance 50"), std::string::npos) << msg;
  msg = error_of(write("hdr.csv", "distance,attn\n30,0.02\n"));
  EXPECT_NE(msg.find("hdr.csv:1: unknown column \"attn\""), std::string::npos) << msg;
}

TEST(DecayInput, JsonRefusalsNameTheField) {
  std::string msg = error_of(write("bad.json", R"({"attn_by_distance": {"30": 0.02, "50": -1}})"));
  EXPECT_NE(msg.find("attn_by_distance[\"50\"] must be a number > 0"), std::string::npos) << msg;
  msg = error_of(write("nokey.json", R"({"gamma": 0.8})"));
  EXPECT_NE(msg.find("attn_by_distance"), std::string::npos) << msg;
  msg = error_of(write("ragged.json",
                       R"({"attn_by_distance": {"30": {"mean_across_seeds": 0.02, "per_seed_means": [0.02, 0.02]},)"
                       R"("50": {"mean_across_seeds": 0.01, "per_seed_means": [0.01]}}})"));
  EXPECT_NE(msg.find("distance 50 has 1 per-seed values, distance 30 has 2"), std::string::npos) << msg;
}

TEST(DecayInput, UnknownFormatListsAccepted) {
  const std::string msg = error_of(write("curve.txt", "hello world\n1 2 3\n"));
  EXPECT_NE(msg.find("unknown decay-curve format"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CSV"), std::string::npos) << msg;
  // Content sniffing without a telling extension.
  std::ostringstream s;
  s << "distance,A\n";
  for (int d : kDistances) s << d << "," << planted(d, 42) << "\n";
  EXPECT_EQ(read_decay_curve(write("curve.dat", s.str())).format, "csv");
}
