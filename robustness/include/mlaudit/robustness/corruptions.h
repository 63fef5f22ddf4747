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
/// needed by the tabular corruptions. Throws InputError on an unknown name,
/// a bad severity or an input layout the corruption does not apply to.
engine::Tensor corrupt(const engine::Tensor& x, const std::string& name, int severity, uint64_t seed,
                       const std::vector<double>& column_mean = {}, const std::vector<double>& column_std = {});

/// Accuracy of the model under one corruption at one severity.
struct CorruptionScore {
  std::string corruption;
  int severity = 0;
  double accuracy = 0;
};

/// Result of a corruption sweep.
struct CorruptionReport {
  double clean_accuracy = 0;
  std::vector<CorruptionScore> scores;
  /// Mean accuracy over severities of one corruption.
  double mean_accuracy(const std::string& corruption) const;
  /// Mean over every (corruption, severity) pair: the mean corruption accuracy.
  double mean_corruption_accuracy() const;
};

/// Evaluate the model on every corruption x severity. Tabular statistics come from x itself.
/// `progress` is called after each (corruption, severity) pair.
CorruptionReport evaluate_corruptions(const engine::Model& model, const engine::Tensor& x,
                                      const std::vector<int64_t>& labels, const std::vector<std::string>& corruptions,
                                      const std::vector<int>& severities, uint64_t seed, int batch = 256,
                                      const engine::ProgressFn& progress = {});

}  // namespace mlaudit::robustness
