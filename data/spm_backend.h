// The seam between ropelab and SentencePiece.
//
// Debian's libsentencepiece exports its bundled protobuf-lite 3.14 symbols,
// and libtorch loads libprotobuf 3.21: in one symbol scope they bind to each
// other and the process crashes at start-up. So SentencePiece lives in a
// plugin module (data/spm_module.cpp) that is dlopen()ed with RTLD_LOCAL |
// RTLD_DEEPBIND, and is reached only through this pure-virtual interface
// (vtable calls, no symbol lookups). Methods return "" on success, else the error.
#pragma once
#include <string>
#include <vector>

namespace ropelab::data {

class SpmBackend {
 public:
  virtual ~SpmBackend() = default;
  virtual std::string train(const std::string& args, const std::vector<std::string>& lines,
                            std::string* model_proto) = 0;
  virtual std::string load(const std::string& model_path) = 0;
  virtual std::string encode(const std::string& text, std::vector<int>* ids) const = 0;
  virtual std::string decode(const std::vector<int>& ids, std::string* text) const = 0;
  virtual int piece_size() const = 0;
  virtual int eos_id() const = 0;
};

// Entry point the module exports: extern "C" SpmBackend* ropelab_spm_new();
using SpmFactory = SpmBackend* (*)();

}  // namespace ropelab::data
