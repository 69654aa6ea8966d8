#include "data/prepare.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "common/error.h"
#include "common/io.h"
#include "data/shard.h"
#include "data/text_sources.h"

namespace ropelab::data {
namespace fs = std::filesystem;

namespace {

// Tokenizes documents into shards of at most `shard_tokens`, each document
// followed by EOS so the model sees where one ends.
std::vector<std::string> write_split(const std::vector<const std::string*>& docs, const Tokenizer& tok,
                                     const std::string& dir, const std::string& name,
                                     uint64_t shard_tokens, uint64_t& n_tokens, std::vector<uint64_t>& counts) {
  std::vector<std::string> files;
  std::vector<uint32_t> buf;
  auto flush = [&] {
    if (buf.empty()) return;
    char fname[64];
    std::snprintf(fname, sizeof fname, "%s_%03zu.bin", name.c_str(), files.size());
    write_shard(dir + "/" + fname, buf, tok.vocab_size());
    for (uint32_t t : buf) ++counts[t];
    files.push_back(fname);
    n_tokens += buf.size();
    buf.clear();
  };
  for (const auto* d : docs) {
    for (int id : tok.encode(*d)) buf.push_back(static_cast<uint32_t>(id));
    buf.push_back(static_cast<uint32_t>(tok.eos_id()));

    if (buf.size() >= shard_tokens) flush();
  }
  flush();
  return files;
}

// Entropy (nats) of the token frequencies: the loss of the best model that
// ignores context, the bar a trained model must get well below.
double unigram_entropy(const std::vector<uint64_t>& counts) {
  double total = 0, h = 0;
  for (auto c : counts) total += double(c);
  for (auto c : counts)
    if (c > 0) h -= double(c) / total * std::log(double(c) / total);
  return h;
}

}  // namespace

nlohmann::json prepare_data(const PrepareOptions& opt) {
  if (opt.out_dir.empty()) throw Error("--out is required");
  if (fs::exists(opt.out_dir))
    throw Error(opt.out_dir + ": already exists; remove it or choose another --out");
  if (!(opt.val_fraction > 0 && opt.val_fraction < 0.5))
    throw Error("--val-fraction must be in (0, 0.5), got " + std::to_string(opt.val_fraction));

  TextCorpus corpus = opt.inputs.empty() ? read_embedded_corpus()
                                         : read_text_sources(opt.inputs, opt.text_field);
  if (corpus.documents.size() < 2)
    throw Error("need at least 2 documents to hold one out for validation, got " +
                std::to_string(corpus.documents.size()));

  const std::string tmp = io::temp_name(fs::path(opt.out_dir).lexically_normal().string());
  fs::remove_all(tmp);
  io::make_dirs(tmp);

  std::cerr << "prepare: " << corpus.documents.size() << " documents; ";
  Tokenizer tok = opt.tokenizer_path.empty()
                      ? (std::cerr << "training " << opt.tokenizer.model_type << " tokenizer (vocab "
                                   << opt.tokenizer.vocab_size << ")\n",
                         Tokenizer::train(corpus.documents, opt.tokenizer, tmp + "/tokenizer.model"))
                      : (std::cerr << "reusing tokenizer " << opt.tokenizer_path << "\n",
                         Tokenizer::load(opt.tokenizer_path));
  if (opt.tokenizer_path.empty() && tok.vocab_size() < opt.tokenizer.vocab_size)
    std::cerr << "prepare: note: the corpus supported only " << tok.vocab_size() << " of the "
              << opt.tokenizer.vocab_size << " requested pieces; the model will use " << tok.vocab_size() << "\n";
  // The tokenizer travels with the data under its own kind of name (tokenizer.json stays .json).
  const std::string tok_file = fs::path(opt.tokenizer_path).extension() == ".json" ? "tokenizer.json" : "tokenizer.model";
  if (!opt.tokenizer_path.empty()) io::write_atomic(tmp + "/" + tok_file, io::read_file(opt.tokenizer_path));

  // Every k-th document is held out: deterministic and spread over sources.
  // (At least one is held out, however few documents there are.)
  const size_t stride = std::min(corpus.documents.size(),
                                 std::max<size_t>(2, static_cast<size_t>(1.0 / opt.val_fraction + 0.5)));
  std::vector<const std::string*> train_docs, val_docs;
  for (size_t i = 0; i < corpus.documents.size(); ++i)
    (i % stride == stride - 1 ? val_docs : train_docs).push_back(&corpus.documents[i]);

  uint64_t n_train = 0, n_val = 0;
  std::vector<uint64_t> train_counts(tok.vocab_size()), val_counts(tok.vocab_size());
  auto train_files = write_split(train_docs, tok, tmp, "train", opt.shard_tokens, n_train, train_counts);
  auto val_files = write_split(val_docs, tok, tmp, "val", opt.shard_tokens, n_val, val_counts);

  nlohmann::json sources = nlohmann::json::array();
  for (const auto& s : corpus.sources)
    sources.push_back({{"path", s.path}, {"format", s.format}, {"bytes", s.bytes}, {"documents", s.documents}});
  nlohmann::json meta = {
      {"format", "ropelab-tokens-v1"},
      {"sources", sources},
      {"documents", {{"train", train_docs.size()}, {"val", val_docs.size()}}},
      {"tokens", {{"train", n_train}, {"val", n_val}}},
      {"train_shards", train_files},
      {"val_shards", val_files},
      {"token_bytes", token_bytes_for_vocab(tok.vocab_size())},
      {"unigram_entropy_nats", unigram_entropy(train_counts)},
      {"tokenizer", {{"file", tok_file},
                     {"sha256", io::sha256_hex(io::read_file(tmp + "/" + tok_file))},
                     {"vocab_size", tok.vocab_size()},
                     {"model_type", opt.tokenizer_path.empty() ? opt.tokenizer.model_type : "given"},
                     {"eos_id", tok.eos_id()}}},
  };
  io::write_json_atomic(tmp + "/meta.json", meta);
  io::commit_atomic(tmp, opt.out_dir);
  std::cerr << "prepare: " << n_train << " train tokens, " << n_val << " validation tokens -> "
            << opt.out_dir << "\n";
  return meta;
}

namespace {

// A folder of existing shards without meta.json (e.g. llm.c's
// fineweb_train_000001.bin / fineweb_val_000000.bin): files whose names
// contain "train" / "val"; the vocabulary is the largest id + 1.
PreparedData load_bare_shards(const std::string& dir) {
  PreparedData d;
  d.dir = dir;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (e.path().extension() != ".bin") continue;
    if (name.find("val") != std::string::npos) d.val_shards.push_back(e.path().string());
    else if (name.find("train") != std::string::npos) d.train_shards.push_back(e.path().string());
  }
  std::sort(d.train_shards.begin(), d.train_shards.end());
  std::sort(d.val_shards.begin(), d.val_shards.end());
  if (d.train_shards.empty() || d.val_shards.empty())
    throw Error(dir + ": not a prepared data directory (no meta.json, and no *train*.bin and *val*.bin shards)");
  uint64_t max_id = 0;
  for (const auto* list : {&d.train_shards, &d.val_shards})
    for (const auto& f : *list) {
      Shard s(f);
      max_id = std::max<uint64_t>(max_id, s.vocab_size() > 0 ? s.vocab_size() - 1 : s.max_token());
    }
  d.vocab_size = max_id + 1;
  d.meta = {{"format", "bare-shards"}, {"train_shards", d.train_shards}, {"val_shards", d.val_shards},
            {"vocab_size", d.vocab_size}};
  return d;
}

}  // namespace

PreparedData load_prepared(const std::string& dir) {
  const std::string meta_path = dir + "/meta.json";
  if (!fs::is_directory(dir)) throw Error(dir + ": no such data directory");
  if (!io::exists(meta_path)) return load_bare_shards(dir);
  PreparedData d;
  d.dir = dir;
  d.meta = io::read_json(meta_path);
  try {
    for (const auto& f : d.meta.at("train_shards")) d.train_shards.push_back(dir + "/" + f.get<std::string>());
    for (const auto& f : d.meta.at("val_shards")) d.val_shards.push_back(dir + "/" + f.get<std::string>());
    d.tokenizer_path = dir + "/" + d.meta.at("tokenizer").at("file").get<std::string>();
    d.vocab_size = d.meta.at("tokenizer").at("vocab_size").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(meta_path + ": missing or malformed field (" + e.what() + ")");
  }
  if (d.train_shards.empty() || d.val_shards.empty())
    throw Error(meta_path + ": lists no train or no validation shards");
  return d;
}

}  // namespace ropelab::data
