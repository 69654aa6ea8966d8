// Synthetic retrieval: a key hidden in a haystack of corpus text, asked for
// at the end. The same builder makes the training-mix examples (so a small
// model learns retrieval within T_train) and the NIAH evaluation prompts.
//
//   ...haystack... The pass key is 48213. Remember it. ...haystack...
//   What is the pass key? The pass key is | 48213
//
// The multi-key variant hides several labelled keys ("The pass key of
// apple is ...") and asks for one of them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace ropelab::data {

struct PasskeyExample {
  std::vector<int64_t> context;                  // haystack with needle(s), ending with the question
  std::vector<int64_t> answer;                   // tokens of the true key
  std::vector<std::vector<int64_t>> wrong;       // tokens of wrong keys (for log-prob ranking)
  std::string key;                               // the true key, as text
  int64_t needle_pos = 0;                        // token index where the asked needle starts
  int64_t question_pos = 0;                      // token index where the question starts
};

class PasskeyBuilder {
 public:
  explicit PasskeyBuilder(const Tokenizer& tok, int digits = 5);
  // Builds a context of exactly `length` tokens from haystack[0 .. length),
  // the asked needle at `depth` in [0, 1] of the haystack part. `n_keys` > 1
  // hides that many labelled needles; `n_wrong` wrong keys are drawn too.
  // With reserve_answer, `length` also counts the answer (training examples:
  // context + answer is exactly `length`). Throws Error if length is too
  // short to hold the needles and question.
  PasskeyExample make(const int64_t* haystack, int64_t length, double depth, uint64_t seed, int n_keys = 1,
                      int n_wrong = 9, bool reserve_answer = false) const;
  // The shortest context make() accepts for n_keys needles.
  int64_t min_length(int n_keys = 1) const;

 private:
  std::vector<int64_t> encode(const std::string& s) const;
  std::string random_key(uint64_t& state) const;
  const Tokenizer& tok_;
  int digits_;
};

// The training mix: "passkey:0.1" replaces that fraction of training windows
// (chosen by a hash of seed, step and sample) with passkey examples built on
// the window's own tokens; the example ends with its answer so the LM loss
// teaches retrieval. Returns how many windows were replaced.
struct DataMix {
  double passkey_fraction = 0;
  static DataMix parse(const std::string& spec);  // "" | "passkey:F"; throws Error
};
int64_t apply_data_mix(const DataMix& mix, const PasskeyBuilder& builder, uint64_t seed, int64_t step,
                       int64_t first_sample, int64_t B, int64_t T, int64_t* windows);

}  // namespace ropelab::data
