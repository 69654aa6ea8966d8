// Trainings as the unit of evidence. Retraining the same recipe with another
// seed changes the model more than re-measuring one model changes a number,
// so a θ effect is judged across trainings: the runs that share their
// recipe except the training seed (one θ of a study with `seeds`) form a
// group, and each measured quantity gets, per group, the mean over its
// trainings and a 95% t-interval (df = n − 1). With fewer than 3 trainings
// the record gives the count and the values and no interval. Plain C++.
//
// Quantities (each record names one, with the fields that key it):
//   gamma, gamma_intrinsic     protocol: the run's final checkpoint's γ record
//   niah_rank_accuracy         method, length: its niah_pooled record
//   alpha_star                 family, length: α* of its alpha_star record, averaged
//                              on a log2 scale (a geometric mean); censored_count says
//                              how many trainings had α* at an end of the sweep
//   longest_retrieving_length  method: its niah_reach record (trainings with none are counted, not averaged)
//   kv_rel_loss_increase       policy, ratio: its kv record
//   kv_window_mass             f: the D_f window's measured mass (sinks excluded),
//                              beside predicted_window_mass
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "report/report.h"
#include "report/report_tables.h"

namespace ropelab::report {

// t_{0.975, df}: the two-sided 95% quantile of Student's t (df >= 1).
double t_quantile_975(int df);

// Records of kind "between_trainings": {group, theta, quantity, its keys,
// n_trainings, runs, seeds, values, mean, sd, ci95_lo, ci95_hi, interval
// ("t, df = n-1" or null), note}, groups in θ order. Runs without a config
// (result files alone) are not trainings the report can group, and are left out.
std::vector<nlohmann::json> between_training_records(const Inputs& in);

// The table of those records (one row each); omitted when there are none.
Table between_trainings_table(const std::vector<nlohmann::json>& records);

}  // namespace ropelab::report
