#include "common/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/io.h"
#include "common/text.h"

namespace ropelab::safetensors {

int64_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}};
  const auto it = sizes.find(dtype);
  if (it == sizes.end()) throw Error("safetensors: unknown dtype \"" + dtype + "\"");
  return it->second;
}

namespace {
// A name from the file, JSON-quoted: control characters escaped, so the message stays one line.
// Bytes of a tensor of this shape and element size; -1 when it overflows.
int64_t byte_size(const std::vector<int64_t>& shape, int64_t elem) {
  int64_t n = elem;
  for (int64_t s : shape)
    if (s < 0 || (s > 0 && n > INT64_MAX / s)) return -1;
    else n *= s;
  return n;
}
}  // namespace

void write(const std::string& path, const std::map<std::string, Tensor>& tensors,
           const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const int64_t bytes = byte_size(t.shape, dtype_size(t.dtype));
    if (bytes < 0) throw Error("safetensors: tensor " + name + " has a shape too large to store");
    const uint64_t size = uint64_t(bytes);
    if (size != t.bytes.size())
      throw Error("safetensors: tensor " + name + " has " + std::to_string(t.bytes.size()) + " bytes, its shape needs " +
                  std::to_string(size));
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data then starts 8-byte aligned
  char len[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  // Streamed into a temporary file, then renamed: no second copy of the weights in memory.
  const std::string tmp = io::temp_name(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(len, 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto& [name, t] : tensors) out.write(t.bytes.data(), std::streamsize(t.bytes.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw Error("safetensors: cannot write " + tmp);
    }
  }
  io::commit_atomic(tmp, path);
}

Layout read_layout(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(path + ": no such file (or not a regular file)");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(path + ": cannot open for reading");
  const uint64_t file_size = uint64_t(in.tellg());
  in.seekg(0);
  auto fail = [&](const std::string& what) { return Error(path + ": not a valid safetensors file: " + what); };
  if (file_size < 8) throw fail("shorter than its 8-byte header length");
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  if (n > file_size - 8) throw fail("header length " + std::to_string(n) + " exceeds the file");
  std::string header_text(n, '\0');
  in.read(header_text.data(), std::streamsize(n));
  if (!in) throw Error(path + ": read failed in the header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not JSON (") + e.what() + ")");
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  const uint64_t data_start = 8 + n, data_size = file_size - data_start;

  Layout f;
  f.file_size = file_size;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") {
      if (!e.is_object()) throw fail("__metadata__ is not a JSON object");
      for (const auto& [k, v] : e.items()) f.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    Entry t;
    // Integers only: nlohmann's get<int64_t> of 1e300 is an undefined float-to-integer cast.
    const nlohmann::json& entry = e;  // (a structured binding cannot be captured in C++17)
    auto integers = [&entry](const char* key) {
      const auto it = entry.is_object() ? entry.find(key) : entry.end();
      return it != entry.end() && it->is_array() &&
             std::all_of(it->begin(), it->end(), [](const nlohmann::json& x) { return x.is_number_integer(); });
    };
    if (!e.is_object() || !e.contains("dtype") || !e["dtype"].is_string() || !integers("shape") ||
        !integers("data_offsets") || e["data_offsets"].size() != 2)
      throw fail("tensor " + text::quoted(name) + " lacks dtype, shape or data_offsets [begin, end] (integers)");
    t.dtype = e["dtype"].get<std::string>();
    t.shape = e["shape"].get<std::vector<int64_t>>();
    const uint64_t begin = e["data_offsets"][0].get<uint64_t>(), end = e["data_offsets"][1].get<uint64_t>();
    int64_t elem = 0;
    try {
      elem = dtype_size(t.dtype);
    } catch (const Error&) {
      throw fail("tensor " + text::quoted(name) + " has unknown dtype " + text::quoted(t.dtype));
    }
    const int64_t bytes = byte_size(t.shape, elem);
    if (bytes < 0) throw fail("tensor " + text::quoted(name) + " has a negative or overflowing shape");
    if (end < begin || end > data_size) throw fail("tensor " + text::quoted(name) + " has data_offsets outside the data");
    if (end - begin != uint64_t(bytes))
      throw fail("tensor " + text::quoted(name) + " spans " + std::to_string(end - begin) + " bytes, its dtype and shape need " +
                 std::to_string(bytes));
    t.offset = data_start + begin;
    t.size = end - begin;
    f.tensors.emplace(name, std::move(t));
  }
  // The tensors must tile the data buffer: no overlaps, no holes, nothing after.
  // Checked before any data is read, so a corrupt header cannot make us allocate more than the file.
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& [name, t] : f.tensors) spans.push_back({t.offset - data_start, t.offset - data_start + t.size});
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& [b, e] : spans) {
    if (b != at) throw fail("tensor data overlaps or leaves a gap at byte " + std::to_string(at));
    at = e;
  }
  if (at != data_size) throw fail(std::to_string(data_size - at) + " bytes after the last tensor");
  return f;
}

File read(const std::string& path) {
  // Read piece by piece (header, then each tensor's bytes) so that memory holds
  // one copy of the weights, not the file and the tensors both.
  const Layout layout = read_layout(path);
  std::ifstream in(path, std::ios::binary);
  File f;
  f.metadata = layout.metadata;
  for (const auto& [name, e] : layout.tensors) {
    Tensor t{e.dtype, e.shape, std::string(size_t(e.size), '\0')};
    in.seekg(std::streamoff(e.offset));
    in.read(t.bytes.data(), std::streamsize(t.bytes.size()));
    if (!in) throw Error(path + ": read failed in tensor " + text::quoted(name));
    f.tensors.emplace(name, std::move(t));
  }
  return f;
}

MappedFile::MappedFile(const std::string& path) : path_(path), layout_(read_layout(path)) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open for reading");
  void* p = layout_.file_size > 0 ? ::mmap(nullptr, layout_.file_size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (p == MAP_FAILED) throw Error(path + ": cannot map into memory");
  base_ = static_cast<const char*>(p);
}

MappedFile::~MappedFile() {
  if (base_) ::munmap(const_cast<char*>(base_), layout_.file_size);
}

const char* MappedFile::data(const std::string& name) const {
  const auto it = layout_.tensors.find(name);
  if (it == layout_.tensors.end()) throw Error(path_ + ": has no tensor " + text::quoted(name));
  return base_ + it->second.offset;
}

void MappedFile::release(const std::string& name) const {
  // The pages are the file's, not anonymous memory: dropping them after the
  // copy keeps the resident set near one copy of the weights.
  const auto& e = layout_.tensors.at(name);
  const uint64_t page = 4096, begin = e.offset / page * page;
  ::madvise(const_cast<char*>(base_) + begin, e.offset + e.size - begin, MADV_DONTNEED);
}

}  // namespace ropelab::safetensors
