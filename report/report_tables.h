// The report's tables (summary.md and report.html show the same ones): the
// γ summary, γ's spread over runs at the same θ, NIAH per method and length,
// KV retrieval per policy and budget, the D_f windows against their predicted
// mass, the KV budgets within ε, the query mixtures behind Expected
// Attention, and a study's stages.
// Each is plain cells, built from the collected records. Plain C++ (no torch).
#pragma once
#include <string>
#include <vector>

#include "report/report.h"

namespace ropelab::report {

struct Table {
  std::string id;                              // the HTML table's id
  std::string title, caption;                  // section heading, one paragraph
  std::vector<std::string> columns;
  std::vector<bool> numeric;                   // per column: right-aligned
  std::vector<std::vector<std::string>> rows;  // absent values are "-"
  std::string when_empty;                      // shown without a table when no rows ("" = omit the section)
};

// The γ summary (always), the between-training intervals
// (report/between_trainings.h), then each table whose records are among the inputs.
std::vector<Table> build_tables(const Inputs& in, const std::vector<SummaryRow>& summary);

}  // namespace ropelab::report
