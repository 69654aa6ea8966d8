// The RoPE scaling a released model was trained with (Hugging Face's
// rope_scaling / rope_parameters: linear, dynamic, yarn, llama3, longrope),
// as the AttentionSettings of the model's own forward. Formulas follow
// transformers' modeling_rope_utils (computed here in float64).
//
// Evaluation-time scaling (model/rope_scaling.h) acts on plain-RoPE models;
// on a model with a trained scaling it is refused rather than stacked.
#pragma once
#include "model/attention.h"
#include "model/config.h"

namespace ropelab::model {

// The settings of a forward over `seq_len` positions (dynamic NTK and
// longrope depend on it). For rope_scaling "none": θ alone.
AttentionSettings trained_attention(const ModelConfig& cfg, int64_t seq_len);

}  // namespace ropelab::model
