#pragma once
// Backdoor scanning of an image classifier (engine::Model, input [N,C,H,W], logits
// [N,K]): Neural Cleanse trigger reverse-engineering with MAD outlier detection
// (Wang et al. 2019) and STRIP input filtering (Gao et al. 2019).
#include <cstdint>
#include <string>
#include <vector>

#include "mlaudit/engine/model.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::privacy {

/// Neural Cleanse optimisation settings. Defaults are the reference implementation's
/// (github.com/bolunwang/backdoor, visualizer.py) except the step budget: `epochs`
/// passes over the clean set per class instead of 1000, so that all classes of a small
/// CNN run in seconds on a CPU.
struct NeuralCleanseConfig {
  int epochs = 60;                      ///< outer steps ("STEPS"; reference 1000), one pass over the clean set each
  int batch = 32;                       ///< mini-batch ("BATCH_SIZE")
  double learning_rate = 0.1;           ///< Adam lr ("LR")
  double beta1 = 0.5, beta2 = 0.9;      ///< Adam moments as in the reference visualizer
  double adam_epsilon = 1e-7;           ///< Keras epsilon
  double init_cost = 1e-3;              ///< initial weight of the mask L1 term ("INIT_COST")
  double cost_multiplier = 1.5;         ///< cost *= 1.5 up, /= 1.5^1.5 down
  int patience = 5;                     ///< steps before a cost change ("PATIENCE")
  double attack_success_threshold = 0.99;
  bool early_stop = true;
  double early_stop_threshold = 1.0;    ///< relative L1 improvement below which a step counts as stalled
  int early_stop_patience = 25;         ///< 5 * patience, as in the reference
  double clip_min = 0.0, clip_max = 1.0;  ///< input domain; the pattern lives inside it
  uint64_t seed = 0;                    ///< initial mask/pattern and batch order
  engine::ProgressFn progress;          ///< called after each class's trigger (done, total classes)
};

/// The smallest trigger found for one target class.
struct ReversedTrigger {
  int64_t target = 0;
  engine::Tensor mask;       ///< [H,W] in [0,1]
  engine::Tensor pattern;    ///< [C,H,W] in [clip_min, clip_max]
  double l1_norm = 0;        ///< sum of the mask (the reference's reg loss for one channel)
  double attack_success = 0; ///< fraction of the clean set sent to `target` by the trigger
  bool reached_threshold = false;  ///< a mask with success >= attack_success_threshold was found
  int epochs_run = 0;
  int64_t gradient_calls = 0;
};

/// Reverse-engineer a trigger for `target` (Wang et al. 2019, Eq. 2-3): minimise
/// CE(f((1-m) x + m p), target) + cost * |m|_1 over m = tanh(a)/2+1/2, p = tanh(b)/2+1/2
/// (scaled to the input domain) with Adam and the dynamic cost schedule.
ReversedTrigger reverse_trigger(const engine::Model& model, const engine::Tensor& x_clean, int64_t target,
                                const NeuralCleanseConfig& cfg);

/// Anomaly index of each value: |v - median| / (1.4826 * MAD) (Wang et al. 2019, Sec. IV.C;
/// 1.4826 makes MAD a consistent estimator of a normal's standard deviation). Throws
/// InputError for fewer than 2 values; MAD 0 gives 0 for values at the median, +inf otherwise.
std::vector<double> anomaly_indices(const std::vector<double>& values, double* median = nullptr,
                                    double* mad = nullptr);

/// Result of a Neural Cleanse scan over several classes.
struct NeuralCleanseResult {
  std::vector<ReversedTrigger> triggers;   ///< one per scanned class, in the order given
  std::vector<double> anomaly_index;       ///< per scanned class
  double median_l1 = 0, mad_l1 = 0;
  std::vector<int64_t> flagged;            ///< classes with index > threshold and L1 below the median
  double threshold = 2.0;
};

/// Run reverse_trigger for each class in `classes` (all output classes when empty) and
/// flag classes whose mask L1 norm is anomalously small (index > 2, Wang et al. 2019).
/// Throws InputError for an input that is not [N,C,H,W] float32, an empty clean set,
/// fewer than 2 classes or a class out of range.
NeuralCleanseResult neural_cleanse(const engine::Model& model, const engine::Tensor& x_clean,
                                   std::vector<int64_t> classes, const NeuralCleanseConfig& cfg,
                                   double anomaly_threshold = 2.0);

/// Write the reversed trigger m * p as an 8-bit PNG (gray for C=1, RGB for C=3),
/// each pixel scaled up `scale` times. Written atomically; throws InputError when unwritable.
void write_trigger_png(const std::string& path, const ReversedTrigger& trigger, double clip_min = 0.0,
                       double clip_max = 1.0, int scale = 4);

/// STRIP settings (Gao et al. 2019).
struct StripConfig {
  int overlays = 100;            ///< N perturbed copies per input (paper: 100)
  double false_rejection_rate = 0.01;  ///< FRR on clean inputs that sets the entropy threshold (paper: 1 %)
  double clip_min = 0.0, clip_max = 1.0;
  uint64_t seed = 0;
  int batch = 256;
};

/// STRIP result: normalised entropies and the decision.
struct StripResult {
  std::vector<double> clean_entropy;     ///< entropies of the clean inputs (same procedure)
  std::vector<double> suspect_entropy;   ///< entropies of the inputs under test
  double clean_mean = 0, clean_std = 0;
  double threshold = 0;                  ///< mean + std * Phi^{-1}(FRR) of the clean entropies
  std::vector<uint8_t> flagged;          ///< suspect entropy < threshold (trojaned input)
};

/// Entropy of one input under STRIP: mean over `overlays` clean samples x_j of
/// H(softmax f(clip(x + x_j))) in bits (Gao et al. 2019, Eq. 1-3; superimposition is
/// the saturating image addition of the reference code).
std::vector<double> strip_entropies(const engine::Model& model, const engine::Tensor& x,
                                    const engine::Tensor& overlay_pool, const StripConfig& cfg,
                                    bool exclude_self = false);

/// STRIP: the threshold comes from the clean pool's own entropies (each overlaid with
/// the other pool samples) under a normal fit at the given FRR; suspects below it are flagged.
StripResult strip(const engine::Model& model, const engine::Tensor& x_suspect, const engine::Tensor& x_clean,
                  const StripConfig& cfg);

}  // namespace mlaudit::privacy
