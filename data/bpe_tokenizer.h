// Byte-level BPE from a Hugging Face tokenizer.json (GPT-2, GPT-NeoX/Pythia,
// Llama 3, Qwen2), without torch or the tokenizers library.
//
// What a tokenizer.json may hold, and what is refused (ropelab::Error naming
// the file and the field, never an approximation):
//   model           type "BPE"; vocab; merges as "a b" strings or [a, b]
//                   pairs; ignore_merges. Refused: byte_fallback true,
//                   dropout, continuing_subword_prefix, end_of_word_suffix,
//                   a vocab that lacks one of the 256 byte symbols.
//   added_tokens    matched literally before the BPE split, leftmost-longest,
//                   the normalized: false ones on the raw text and then the
//                   normalized: true ones on what is left (as tokenizers
//                   does). Refused: single_word, lstrip or rstrip true.
//   normalizer      null, or NFC — NFC is applied to text that it leaves
//                   unchanged (code points in ranges where every character
//                   is NFC-stable with combining class 0: U+0000–02FF, Greek
//                   and Cyrillic letters, punctuation and currency, kana, CJK
//                   ideographs, Hangul syllables); encode() refuses any other
//                   code point rather than guess. Other normalizers refused.
//   pre_tokenizer   ByteLevel (add_prefix_space, use_regex: GPT-2's pattern),
//                   or a Sequence of Split pre-tokenizers (behavior Isolated,
//                   invert false) followed by one ByteLevel. A Split's regex
//                   must be one of: GPT-2's pattern (or tiktoken's spelling
//                   of it), Llama 3's, Qwen2's — each implemented by hand
//                   over code points. Any other pattern is refused by name.
//   post_processor  null, ByteLevel, TemplateProcessing (its "single"
//                   template's special tokens), or a Sequence of those.
//   decoder         ByteLevel.
// \p{L} and \p{N} are Unicode 17.0's General_Category L* and N* (tables in
// bpe_tokenizer.cpp); \s is Unicode White_Space, as in Rust's and Python's
// regex engines (JavaScript's \s differs on U+0085 and U+FEFF).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ropelab::data {

class BpeTokenizer {
 public:
  // Reads a tokenizer.json; throws ropelab::Error("<path>: <field>: ...").
  static BpeTokenizer load(const std::string& path);
  // The same from JSON text; `name` stands for the file in error messages.
  static BpeTokenizer parse(const std::string& json_text, const std::string& name);
  ~BpeTokenizer();
  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;

  // UTF-8 text to ids. Added/special tokens written in the text become their
  // ids. With add_special_tokens, the post-processor's template tokens (e.g.
  // Llama 3's <|begin_of_text|>) are put around the text. Throws Error on
  // text that is not valid UTF-8 or that NFC would change (see above).
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens = false) const;
  // Ids to text as tokenizers' ByteLevel decoder does (bytes that are not
  // valid UTF-8 become U+FFFD). Throws Error on an id that is no token.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int vocab_size() const;  // 1 + the largest id of the vocab and the added tokens
  std::optional<int32_t> token_id(const std::string& token) const;  // vocab or added token
  std::string token(int32_t id) const;  // the token's string as stored in tokenizer.json
  bool is_special(int32_t id) const;    // an added token with special: true
  const std::vector<int32_t>& template_prefix() const;  // ids before the text with add_special_tokens
  const std::vector<int32_t>& template_suffix() const;  // ids after it
  const std::string& path() const;

  struct Impl;

 private:
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ropelab::data
