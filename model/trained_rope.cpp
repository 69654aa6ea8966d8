#include "model/trained_rope.h"

#include <ATen/ATen.h>

namespace ropelab::model {

AttentionSettings rope_attention(const RopeParams& p, const RopeGeometry& g, int64_t seq_len) {
  AttentionSettings s;
  s.rope_theta = g.theta;
  const std::string type = rope_method(p.type).name;
  if (type == "default") return s;
  const RopeFrequencies f = rope_frequencies(p, g, seq_len);
  s.inv_freq = at::tensor(f.inv_freq, at::kDouble);
  s.rope_attention_factor = f.attention_factor;
  s.logn_train_length = f.logn_length;
  return s;
}

AttentionSettings trained_attention(const ModelConfig& c, int64_t seq_len) {
  return rope_attention(c.rope_params(), c.rope_geometry(), seq_len);
}

}  // namespace ropelab::model
