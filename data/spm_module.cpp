// The SentencePiece plugin (see data/spm_backend.h for why it is separate).
// The only translation unit that includes SentencePiece's headers.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "data/spm_backend.h"

namespace {

class Lines : public sentencepiece::SentenceIterator {
 public:
  explicit Lines(const std::vector<std::string>& l) : lines_(l) {}
  bool done() const override { return pos_ >= lines_.size(); }
  void Next() override { ++pos_; }
  const std::string& value() const override { return lines_[pos_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& lines_;
  size_t pos_ = 0;
};

class Backend : public ropelab::data::SpmBackend {
 public:
  std::string train(const std::string& args, const std::vector<std::string>& lines, std::string* proto) override {
    Lines it(lines);
    const auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, proto);
    return st.ok() ? "" : st.ToString();
  }
  std::string load(const std::string& path) override {
    const auto st = sp_.Load(path);
    return st.ok() ? "" : st.ToString();
  }
  std::string encode(const std::string& text, std::vector<int>* ids) const override {
    const auto st = sp_.Encode(text, ids);
    return st.ok() ? "" : st.ToString();
  }
  std::string decode(const std::vector<int>& ids, std::string* text) const override {
    const auto st = sp_.Decode(ids, text);
    return st.ok() ? "" : st.ToString();
  }
  int piece_size() const override { return sp_.GetPieceSize(); }
  int eos_id() const override { return sp_.eos_id(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) ropelab::data::SpmBackend* ropelab_spm_new() { return new Backend; }
