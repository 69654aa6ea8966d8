// A RoPE method (model/rope_methods.h) as the AttentionSettings of a forward:
// the one place a method's frequencies become the tensors attention uses,
// for the method a model was trained with and for one applied at evaluation.
#pragma once
#include "model/attention.h"
#include "model/config.h"
#include "model/rope_methods.h"

namespace ropelab::model {

// The settings of a forward over `seq_len` positions (dynamic NTK and
// longrope depend on it). Plain RoPE leaves inv_freq undefined, so attention
// makes it on the positions' device (no host copy inside a CUDA graph).
AttentionSettings rope_attention(const RopeParams& p, const RopeGeometry& g, int64_t seq_len);

// The model's own method, at its θ and head geometry.
AttentionSettings trained_attention(const ModelConfig& cfg, int64_t seq_len);

}  // namespace ropelab::model
