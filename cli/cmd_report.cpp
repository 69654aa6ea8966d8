// `ropelab report`: one offline HTML page, SVG figures and a Markdown summary
// from run directories, study directories and .jsonl result files.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "report/report.h"

namespace ropelab::cli {
namespace {

struct ReportFlags {
  std::vector<std::string> inputs;
  std::string out, node_modules;
  bool no_svg = false;
};

void run_report(const ReportFlags& f) {
  report::Options opt;
  opt.out_dir = f.out;
  opt.node_modules = f.node_modules;
  opt.svg = !f.no_svg;
  const report::Written w = report::write_report(f.inputs, opt);
  for (const auto& n : w.notes) std::cerr << "note: " << n << "\n";
  std::cout << "wrote " << f.out << "/report.html (" << w.n_charts << " chart" << (w.n_charts == 1 ? "" : "s")
            << "), " << f.out << "/summary.md, " << f.out << "/report-data.json and " << f.out << "/figures/\n";
}

}  // namespace

void add_report_command(CLI::App& root) {
  auto f = std::make_shared<ReportFlags>();
  CLI::App* cmd = root.add_subcommand(
      "report", "Write an offline HTML report (charts, summary table), SVG figures and summary.md");
  cmd->add_option("inputs", f->inputs,
                  "run directories, study directories (searched one level deep) or .jsonl result files")
      ->required();
  cmd->add_option("--out", f->out, "output directory (created if missing)")->required();
  cmd->add_option("--node-modules", f->node_modules,
                  "where vega, vega-lite and vega-embed are installed (default: .cache/node_modules of the "
                  "source tree, or $ROPELAB_NODE_MODULES)");
  cmd->add_flag("--no-svg", f->no_svg, "skip figures/*.svg (report.html has every chart)");
  cmd->callback([f]() { run_report(*f); });
}

}  // namespace ropelab::cli
