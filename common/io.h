// File helpers with the durability rules the whole project relies on:
// nothing half-written is ever visible under its final name.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace ropelab::io {

// Writes `bytes` to `path` atomically: PATH.tmp.<pid>, fsync, rename, fsync dir.
void write_atomic(const std::string& path, const std::string& bytes);
// Renames an already-written temporary file into place (fsync file, rename, fsync dir).
void commit_atomic(const std::string& tmp_path, const std::string& path);
// A temporary sibling name for `path` that a crash can leave behind harmlessly.
std::string temp_name(const std::string& path);

std::string read_file(const std::string& path);  // throws Error naming the path
bool exists(const std::string& path);
void make_dirs(const std::string& path);

nlohmann::json read_json(const std::string& path);  // names the file on parse errors
void write_json_atomic(const std::string& path, const nlohmann::json& j);

// JSON Lines: one record per line. Appends flush and fsync so a killed run
// loses at most the line being written; the reader skips a torn last line.
void append_jsonl(const std::string& path, const nlohmann::json& record);
std::vector<nlohmann::json> read_jsonl(const std::string& path);

std::string sha256_hex(const std::string& bytes);

// An exclusive advisory lock (flock) on `path`, created if missing, held for
// the object's lifetime: processes that prepare one shared thing (a data
// directory two trainings need) take turns. Blocks until it is free; throws
// Error naming the path when it cannot be opened.
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace ropelab::io
