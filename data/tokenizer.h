// SentencePiece, trained in-process or loaded from a .model file.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace ropelab::data {

class SpmBackend;

struct TokenizerSpec {
  int vocab_size = 2048;
  std::string model_type = "bpe";  // "bpe" or "unigram"
  bool byte_fallback = true;       // unknown characters become bytes, never <unk>
  int max_sentences = 200000;      // lines sampled for training (speed bound)
};

class Tokenizer {
 public:
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
  std::unique_ptr<SpmBackend> sp_;
  std::string path_;
};

}  // namespace ropelab::data
