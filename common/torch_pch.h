// Precompiled once and reused by every torch-using target (see CMakeLists).
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
