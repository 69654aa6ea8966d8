#include "data/tokenizer.h"

#include <dlfcn.h>

#include <cstdlib>
#include <sstream>

#include "common/error.h"
#include "common/io.h"
#include "common/text.h"
#include "data/bpe_tokenizer.h"
#include "data/loader.h"
#include "data/spm_backend.h"

namespace ropelab::data {
namespace {

// A deterministic sample of at most `limit` non-empty lines: SentencePiece
// trains on lines, and a bound keeps large corpora quick.
std::vector<std::string> sample_lines(const std::vector<std::string>& docs, size_t limit) {
  size_t total = 0;
  for (const auto& d : docs) for (char c : d) total += c == '\n';
  const double keep = total > limit ? double(limit) / double(total) : 1.0;
  std::vector<std::string> lines;
  uint64_t i = 0;
  for (const auto& d : docs) {
    std::istringstream in(d);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (keep < 1.0 && double(mix64(i++) % 1000000) / 1e6 >= keep) continue;
      lines.push_back(std::move(line));
    }
  }
  return lines;
}

// Loads the SentencePiece plugin once per process (see spm_backend.h).
SpmFactory spm_factory() {
  static SpmFactory factory = [] {
    const char* env = std::getenv("ROPELAB_SPM_MODULE");
    const std::string path = env ? env : ROPELAB_SPM_MODULE;
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) throw Error("cannot load the SentencePiece module " + path + ": " + ::dlerror());
    auto f = reinterpret_cast<SpmFactory>(::dlsym(h, "ropelab_spm_new"));
    if (!f) throw Error(path + ": not a ropelab SentencePiece module (no ropelab_spm_new)");
    return f;
  }();
  return factory;
}

void check(const std::string& err, const std::string& what) {
  if (!err.empty()) throw Error(what + ": " + err);
}

}  // namespace

Tokenizer::Tokenizer() : sp_(spm_factory()()) {}
Tokenizer::Tokenizer(std::unique_ptr<BpeTokenizer> bpe) : bpe_(std::move(bpe)) {
  // The end-of-text token by the names the released BPE vocabularies give it.
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"})
    if (const auto id = bpe_->token_id(name)) {
      bpe_eos_ = *id;
      break;
    }
}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& model_path) {
  if (text::ends_with(model_path, ".json")) {
    Tokenizer t(std::make_unique<BpeTokenizer>(BpeTokenizer::load(model_path)));
    t.path_ = model_path;
    return t;
  }
  Tokenizer t;
  check(t.sp_->load(model_path), model_path + ": not a SentencePiece model");
  t.path_ = model_path;
  return t;
}

Tokenizer Tokenizer::train(const std::vector<std::string>& docs, const TokenizerSpec& spec,
                           const std::string& model_path) {
  if (spec.model_type != "bpe" && spec.model_type != "unigram")
    throw Error("tokenizer model type must be bpe or unigram, got \"" + spec.model_type + "\"");
  if (spec.vocab_size < 260)
    throw Error("--vocab-size must be at least 260 (256 byte-fallback pieces + specials), got " +
                std::to_string(spec.vocab_size));
  const auto lines = sample_lines(docs, spec.max_sentences);
  if (lines.empty()) throw Error("no text lines to train the tokenizer on");
  std::ostringstream args;
  args << "--vocab_size=" << spec.vocab_size
       << " --model_type=" << spec.model_type << " --byte_fallback=" << (spec.byte_fallback ? "true" : "false")
       << " --character_coverage=0.9995 --max_sentence_length=16384 --num_threads=2"
       << " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --hard_vocab_limit=false"
       << " --minloglevel=2";
  std::string proto;
  check(Tokenizer().sp_->train(args.str(), lines, &proto), "tokenizer training failed");
  io::write_atomic(model_path, proto);
  return load(model_path);
}

std::vector<int> Tokenizer::encode(const std::string& text) const {
  if (bpe_) {
    const auto ids = bpe_->encode(text);
    return {ids.begin(), ids.end()};
  }
  std::vector<int> ids;
  check(sp_->encode(text, &ids), "tokenizer encode failed");
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  if (bpe_) return bpe_->decode({ids.begin(), ids.end()}, /*skip_special_tokens=*/true);
  std::string out;
  check(sp_->decode(ids, &out), "tokenizer decode failed");
  return out;
}

int Tokenizer::vocab_size() const { return bpe_ ? bpe_->vocab_size() : sp_->piece_size(); }
int Tokenizer::eos_id() const {
  if (!bpe_) return sp_->eos_id();
  if (bpe_eos_ < 0)
    throw Error(path_ + ": no end-of-text token (<|endoftext|>, <|end_of_text|>, </s> or <eos>) to separate documents");
  return bpe_eos_;
}

}  // namespace ropelab::data
