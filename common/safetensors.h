// The safetensors file format (Hugging Face), plain C++ (no torch):
//   8 bytes   N, the header's length, little-endian uint64
//   N bytes   JSON: {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [BEGIN, END]}, ...,
//                    "__metadata__": {"k": "v"}}   (padded with spaces to a multiple of 8)
//   the data  each tensor's bytes at [BEGIN, END) counted from the end of the header,
//             row-major, little-endian, packed without gaps
// Used by `ropelab export hf` and `--init-from`.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ropelab::safetensors {

struct Tensor {
  std::string dtype;           // "F32", "BF16", "F16", "F64", "I64", ...
  std::vector<int64_t> shape;
  std::string bytes;           // row-major, little-endian
};

// Bytes per element of a dtype name; throws Error for a name it does not know.
int64_t dtype_size(const std::string& dtype);

// Writes the tensors (sorted by name, as Hugging Face does) atomically.
void write(const std::string& path, const std::map<std::string, Tensor>& tensors,
           const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Reads and checks a file: header length within the file, valid JSON, known
// dtypes, offsets that tile the data exactly and match each shape. Throws
// Error naming the file and the tensor or field at fault.
struct File {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
File read(const std::string& path);

// The same checks without reading the data: each tensor's place in the file.
struct Entry {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t offset = 0, size = 0;  // bytes, from the start of the file
};
struct Layout {
  std::map<std::string, Entry> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t file_size = 0;
};
Layout read_layout(const std::string& path);

// A checked file mapped read-only: a tensor's bytes are read where they lie
// (loading a model streams them into its parameters, never holding a second copy).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const Layout& layout() const { return layout_; }
  const std::string& path() const { return path_; }
  const char* data(const std::string& name) const;  // throws Error for a name it lacks
  void release(const std::string& name) const;      // drops the tensor's pages once copied

 private:
  std::string path_;
  Layout layout_;
  const char* base_ = nullptr;
};

}  // namespace ropelab::safetensors
