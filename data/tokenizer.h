// The one tokenizer interface: SentencePiece (trained in-process, or a
// .model file such as Llama 2's tokenizer.model) or a Hugging Face
// tokenizer.json byte-level BPE (GPT-NeoX/Pythia, Llama 3, Qwen2;
// data/bpe_tokenizer.h), chosen by the file loaded.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace ropelab::data {

class SpmBackend;
class BpeTokenizer;

struct TokenizerSpec {
  int vocab_size = 2048;
  std::string model_type = "bpe";  // "bpe" or "unigram"
  bool byte_fallback = true;       // unknown characters become bytes, never <unk>
  int max_sentences = 200000;      // lines sampled for training (speed bound)
};

class Tokenizer {
 public:
  // A path ending in .json is a tokenizer.json; anything else a SentencePiece model.
  static Tokenizer load(const std::string& model_path);
  // Trains on the documents' lines and writes the model atomically to model_path.
  static Tokenizer train(const std::vector<std::string>& documents, const TokenizerSpec& spec,
                         const std::string& model_path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  std::vector<int> encode(const std::string& text) const;
  std::string decode(const std::vector<int>& ids) const;
  int vocab_size() const;
  int eos_id() const;  // separates documents in the token stream
  const std::string& path() const { return path_; }

 private:
  Tokenizer();
  explicit Tokenizer(std::unique_ptr<BpeTokenizer> bpe);
  std::unique_ptr<SpmBackend> sp_;   // one of the two
  std::unique_ptr<BpeTokenizer> bpe_;
  int bpe_eos_ = -1;
  std::string path_;
};

}  // namespace ropelab::data
