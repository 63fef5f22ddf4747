#pragma once
// Common corruptions (Hendrycks & Dietterich, "Benchmarking neural network robustness
// to common corruptions and perturbations", ICLR 2019) at severities 1..5 with the
// CIFAR-10-C constants (make_cifar_c.py), plus tabular feature noise and dropout.
#include <cstdint>
#include <string>
#include <vector>

#include "mlaudit/engine/model.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::robustness {

/// Image corruptions (inputs [N,C,H,W] in [0,1]).
const std::vector<std::string>& image_corruptions();
/// Tabular corruptions (inputs [N,F]).
const std::vector<std::string>& tabular_corruptions();

/// Corrupt a batch at severity 1..5. `column_mean` / `column_std` (length F) are
/// needed by the tabular corruptions. Row b draws its noise from its own stream keyed by
/// (seed, first_index + b), so corrupting a slice of rows (first_index = its first row's global
/// index) gives those rows exactly what corrupting the whole set gives them. Throws InputError
/// on an unknown name, a bad severity or an input layout the corruption does not apply to.
engine::Tensor corrupt(const engine::Tensor& x, const std::string& name, int severity, uint64_t seed,
                       const std::vector<double>& column_mean = {}, const std::vector<double>& column_std = {},
                       int64_t first_index = 0);

/// Accuracy of the model under one corruption at one severity.
struct CorruptionScore {
  std::string corruption;
  int severity = 0;
  double accuracy = 0;
  int64_t correct = 0;  ///< samples still classified correctly (accuracy = correct / n)
};

/// Result of a corruption sweep.
struct CorruptionReport {
  int64_t n = 0;              ///< samples evaluated
  int64_t clean_correct = 0;  ///< correctly classified clean samples
  double clean_accuracy = 0;
  /// correct / n as every accuracy here is computed (0 for no samples).
  double accuracy(int64_t correct) const { return n ? double(correct) / double(n) : 0.0; }
  std::vector<CorruptionScore> scores;
  /// Mean accuracy over severities of one corruption.
  double mean_accuracy(const std::string& corruption) const;
  /// Mean over every (corruption, severity) pair: the mean corruption accuracy.
  double mean_corruption_accuracy() const;
};

/// Evaluate the model on every corruption x severity over rows [first, end) of x (end < 0: to
/// the last row). Tabular statistics come from every row of x, and each row's noise from its
/// global index, so the counts of disjoint slices add up to the whole run's.
/// `progress` is called after each (corruption, severity) pair.
CorruptionReport evaluate_corruptions(const engine::Model& model, const engine::Tensor& x,
                                      const std::vector<int64_t>& labels, const std::vector<std::string>& corruptions,
                                      const std::vector<int>& severities, uint64_t seed, int batch = 256,
                                      const engine::ProgressFn& progress = {}, int64_t first = 0, int64_t end = -1);

}  // namespace mlaudit::robustness
