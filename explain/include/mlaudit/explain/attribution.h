#pragma once
// Attribution methods on any differentiable engine::Model: gradient family
// (gradient, saliency, input x gradient, integrated gradients, SmoothGrad; DeepLIFT,
// which needs the engine::Graph) and perturbation family (occlusion, KernelSHAP, LIME,
// permutation importance).
// Every method returns attributions with the input's shape; the target of each
// row is one output index (a logit, or a probability through SoftmaxModel).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::explain {

using engine::Model;
using engine::Shape;
using engine::Tensor;

// ---------------------------------------------------------------- targets

/// Which output is explained: the true label, the predicted class, or a fixed index K.
struct Target {
  enum class Kind { Label, Predicted, Index };
  Kind kind = Kind::Predicted;
  int64_t index = 0;
};
/// The attribution methods `mlaudit explain --method` runs, in the order its help lists them
/// (the table `audit --check` validates a section's `method:` against).
const std::vector<std::string>& method_names();
/// Parse "label", "predicted" or a non-negative integer K; throws InputError otherwise.
Target parse_target(const std::string& text);
/// One output index per row of x; `labels` (int64 [N]) is required for Kind::Label.
/// Throws InputError when labels are missing/mis-sized or an index is out of range.
std::vector<int64_t> resolve_targets(const Model& model, const Tensor& x, const Target& target,
                                     const Tensor* labels);

/// Wraps a model so that its output is softmax(logits) (for `--output softmax`).
/// Backward: d p_j / d z = p_j (e_j - p), so seed_z = p * (seed_p - <seed_p, p>).
class SoftmaxModel : public Model {
 public:
  explicit SoftmaxModel(const Model& inner) : inner_(inner) {}
  Shape input_shape() const override { return inner_.input_shape(); }
  Tensor forward(const Tensor& x) const override;
  Tensor input_gradient(const Tensor& x, const engine::SeedFn& seed, Tensor* output = nullptr) const override;
  /// The inner model's mixtures (its fast path, if any), then softmax on every row.
  void forward_mixtures(const std::vector<engine::Mixtures>& batch, const engine::Shape& row_shape, int64_t max_rows,
                        bool ends, engine::MixtureOutputs& out) const override;

 private:
  const Model& inner_;
};

/// output[i, targets[i]] for every row (model output must be [N,C]).
std::vector<double> target_outputs(const Model& model, const Tensor& x, const std::vector<int64_t>& targets,
                                   int64_t batch_rows = 4096);

// ---------------------------------------------------------------- gradient family

/// Signed gradient of the target output w.r.t. the input (Simonyan et al. 2014), batched.
Tensor gradient(const Model& model, const Tensor& x, const std::vector<int64_t>& targets, int64_t batch_rows = 256);
/// Saliency map: |gradient| (Simonyan et al. 2014, as Captum's Saliency with abs=True).
Tensor saliency(const Model& model, const Tensor& x, const std::vector<int64_t>& targets, int64_t batch_rows = 256);
/// Input x gradient (Shrikumar et al. 2016).
Tensor input_x_gradient(const Model& model, const Tensor& x, const std::vector<int64_t>& targets,
                        int64_t batch_rows = 256);

/// Quadrature rules of integrated gradients, as Captum's approximation_methods.py defines them.
enum class IgRule { GaussLegendre, RiemannLeft, RiemannRight, RiemannMiddle, RiemannTrapezoid };
/// Parse "gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid".
IgRule parse_ig_rule(const std::string& text);
/// Path points alpha_k in [0,1] and their weights (Captum's alphas / step_sizes).
struct IgPath {
  std::vector<double> alphas;
  std::vector<double> step_sizes;
};
/// Alphas and step sizes of a rule for n steps; throws InputError for n < 1 (n < 2 for Riemann rules).
IgPath ig_path(IgRule rule, int steps);
/// Gauss-Legendre nodes (ascending) and weights on [-1,1], as numpy.polynomial.legendre.leggauss.
void gauss_legendre(int n, std::vector<double>& nodes, std::vector<double>& weights);

struct IgOptions {
  IgRule rule = IgRule::GaussLegendre;  ///< Captum's default
  int steps = 50;                       ///< Captum's default n_steps
  int64_t batch_rows = 256;             ///< path points per forward/backward call (bounds memory)
  engine::ProgressFn progress;  ///< called as rows finish: (rows done, rows)
};
struct IgResult {
  Tensor attributions;                  ///< same shape as x
  std::vector<double> output_x;         ///< f_t(x)
  std::vector<double> output_baseline;  ///< f_t(baseline)
  std::vector<double> attribution_sum;  ///< sum of attributions per row
  /// Completeness gap |sum(attr) - (f(x) - f(b))| / max(|f(x) - f(b)|, 1e-12) (Sundararajan et al. 2017, Prop. 1).
  std::vector<double> relative_gap;
};
/// Integrated gradients (Sundararajan et al. 2017, eq. 3 with the rule's quadrature):
/// attr = (x - b) * sum_k w_k grad f_t(b + alpha_k (x - b)). `baseline` has x's shape.
/// Results do not depend on batch_rows (per-row sums always run in step order).
IgResult integrated_gradients(const Model& model, const Tensor& x, const Tensor& baseline,
                              const std::vector<int64_t>& targets, const IgOptions& opts = {});

/// Build an IG baseline with x's shape: "zeros", "mean" (per-feature mean of `background`),
/// "blur" (Gaussian blur of each image over its last two axes, sigma `blur_sigma`),
/// or a .npy path (one sample, broadcast, or one per row). Throws InputError on a mismatch.
Tensor make_baseline(const std::string& spec, const Tensor& x, const Tensor* background, double blur_sigma = 5.0);

struct SmoothGradOptions {
  int samples = 50;            ///< n in Smilkov et al. 2017 (their recommendation, ~50)
  double noise_level = 0.15;   ///< sigma / (max(x) - min(x)) per sample (paper: 10-20%)
  /// When >= 0: sigma itself, in input units, for every sample (Captum NoiseTunnel's `stdevs`);
  /// replaces noise_level.
  double stdevs = -1;
  bool squared = false;        ///< SmoothGrad-Squared (Hooker et al. 2019): mean of grad^2
  /// Row i's noise comes from its own stream, seeded seed + 0x9E3779B97F4A7C15 * (row_offset + i)
  /// (as KernelSHAP's and LIME's), so it does not depend on the other rows given.
  uint64_t seed = 0;
  /// Index of x's first row in the whole data set (`--shard`: the slice's first row), so that a
  /// slice draws the noise its rows draw in one call over every row.
  int64_t row_offset = 0;
  int64_t batch_rows = 256;
  /// Optional fixed noise [samples, sample shape...] used for every row instead of drawing (goldens).
  const Tensor* noise = nullptr;
  engine::ProgressFn progress;  ///< called as rows finish: (rows done, rows)
};
/// SmoothGrad (Smilkov et al. 2017): mean_k grad f_t(x + eps_k), eps_k ~ N(0, sigma^2).
Tensor smoothgrad(const Model& model, const Tensor& x, const std::vector<int64_t>& targets,
                  const SmoothGradOptions& opts = {});

struct DeepLiftOptions {
  int64_t batch_rows = 128;  ///< input rows per forward/backward (each runs with its baseline: 2x rows)
  double eps = 1e-10;        ///< Captum's eps: below this |x - x_b| a nonlinearity keeps its gradient
  /// false: multipliers follow the chain rule (Shrikumar et al. 2017, sec. 3.4), so summation-to-delta
  /// holds. true: reproduce Captum 0.9 called one sample at a time, whose hooks give a nonlinearity
  /// followed by another (ReLU -> MaxPool) the ordinary gradient of its output instead of the
  /// follower's multipliers, and whose MaxPool fallback uses the input row's gradient for both halves.
  bool captum_compat = false;
};
struct DeepLiftResult {
  Tensor attributions;                  ///< same shape as x
  std::vector<double> output_x;         ///< f_t(x)
  std::vector<double> output_baseline;  ///< f_t(baseline)
  std::vector<double> attribution_sum;  ///< sum of attributions per row
  std::vector<double> gap;              ///< sum(attr) - (f_t(x) - f_t(b)) (Captum's convergence delta)
  /// |gap| / max(|f(x) - f(b)|, 1e-12): summation-to-delta (Shrikumar et al. 2017, eq. 1).
  std::vector<double> relative_gap;
};
/// DeepLIFT, rescale rule (Shrikumar et al. 2017, sec. 3.3), with Captum's DeepLift rules
/// (multiply_by_inputs=True): Relu/Sigmoid/Tanh/Elu/LeakyRelu/Softplus nodes back-propagate the
/// multiplier (y - y_b) / (x - x_b), MaxPool nodes Captum's max-pool rule, every other op its
/// own VJP; attr = (x - b) * multiplier-gradient. Needs the graph (not just a Model): it walks
/// the nodes, evaluating each one through a one-node engine Session. The gap reports
/// summation-to-delta (~0 by default; Captum's own deltas with captum_compat on MaxPool nets).
/// Throws UnsupportedError for a Softmax/LogSoftmax node and InputError for bad shapes or targets.
class DeepLift {
 public:
  /// Prepares the node walk; throws for multi-input graphs and unsupported nodes.
  explicit DeepLift(const engine::Graph& graph);
  ~DeepLift();
  DeepLift(const DeepLift&) = delete;
  DeepLift& operator=(const DeepLift&) = delete;
  /// Attributions of output[targets[i]] for every row; `baseline` has x's shape.
  DeepLiftResult attribute(const Tensor& x, const Tensor& baseline, const std::vector<int64_t>& targets,
                           const DeepLiftOptions& opts = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
/// DeepLift(graph).attribute(...).
DeepLiftResult deeplift(const engine::Graph& graph, const Tensor& x, const Tensor& baseline,
                        const std::vector<int64_t>& targets, const DeepLiftOptions& opts = {});

// ---------------------------------------------------------------- perturbation family

struct OcclusionOptions {
  Shape window;              ///< sliding window over one sample's dims (rank = x.rank()-1)
  Shape stride;              ///< same rank; empty means equal to window
  float baseline = 0.0f;     ///< value written into the occluded window (Captum default 0)
  int64_t batch_rows = 512;
  engine::ProgressFn progress;  ///< called as rows finish: (rows done, rows)
};
/// Occlusion (Zeiler & Fergus 2014, as Captum's Occlusion): each element gets the mean,
/// over the windows covering it, of f_t(x) - f_t(x with the window set to the baseline).
/// Elements covered by no window get 0.
Tensor occlusion(const Model& model, const Tensor& x, const std::vector<int64_t>& targets,
                 const OcclusionOptions& opts);

/// Group index per element of one sample: blocks of size x size over the last two axes,
/// shared across channels (superpixels on a grid). `sample_shape` excludes the batch axis.
std::vector<int64_t> grid_superpixels(const Shape& sample_shape, int64_t size);

struct KernelShapOptions {
  int64_t samples = 0;           ///< 0: shap's "auto" = 2M + 2048, capped at 2^M - 2
  /// Row i's sampled coalitions come from a stream seeded seed + 0x9E3779B97F4A7C15 * (row_offset + i).
  uint64_t seed = 0;
  int64_t row_offset = 0;        ///< index of x's first row in the whole data set (--shard)
  /// Model rows (coalitions x background, across samples) per forward call, also capped at 64 MiB
  /// of input. 0 = auto: 32768 input values per call, 1 to 4096 rows (measured: 4096 rows suit the
  /// 7-feature credit MLP; 41 rows run the fmnist CNN 2.7x faster than 4096, whose activations
  /// no longer fit in cache).
  int64_t batch_rows = 0;
  /// Group id (0..G-1) per element of one sample; empty: each element is its own feature.
  std::vector<int64_t> groups;
  engine::ProgressFn progress;  ///< called as rows finish: (rows done, rows)
};
struct KernelShapResult {
  Tensor attributions;                   ///< x's shape; every element gets its group's phi
  std::vector<std::vector<double>> phi;  ///< [rows][groups]
  std::vector<double> output_x;          ///< f_t(x)
  std::vector<double> expected_value;    ///< E_background f_t
  std::vector<double> efficiency_gap;    ///< sum(phi) - (f(x) - E f), ~0 by construction
  std::vector<int64_t> coalitions;       ///< coalitions evaluated per row
  std::vector<bool> exact;               ///< all 2^M - 2 coalitions enumerated
  int64_t num_groups = 0;
};
/// KernelSHAP (Lundberg & Lee 2017, Thm. 2) exactly as shap.KernelExplainer (l1_reg=False):
/// Shapley-kernel weights, complete enumeration of the subset sizes the budget covers,
/// paired sampling of the rest, constrained WLS that eliminates the last varying feature so
/// that sum(phi) = f(x) - E f(background). Features equal to x in every background row get 0.
/// Speed without changing a value: a synthetic row depends only on the coalition's bits over the
/// groups where its background row differs from x, so equal rows are evaluated once (rows equal to
/// x or to the background row reuse f(x) and f(background)); rows of many samples share forward
/// calls; exact plans and their WLS factorisation are computed once per number of features.
KernelShapResult kernel_shap(const Model& model, const Tensor& x, const Tensor& background,
                             const std::vector<int64_t>& targets, const KernelShapOptions& opts = {});

struct LimeOptions {
  int samples = 0;             ///< 0: lime default (5000 tabular, 1000 image)
  double kernel_width = 0;     ///< 0: lime default (0.75 sqrt(F) tabular, 0.25 image)
  double ridge_alpha = 1.0;    ///< lime's Ridge(alpha=1)
  /// Row i's perturbations come from a stream seeded seed + 0x9E3779B97F4A7C15 * (row_offset + i).
  uint64_t seed = 0;
  int64_t row_offset = 0;      ///< index of x's first row in the whole data set (--shard)
  int64_t batch_rows = 4096;
  /// Image mode when non-empty: group id per element (superpixels), binary on/off features.
  std::vector<int64_t> groups;
  /// Tabular only: fixed N(0,1) draws [samples, F] used instead of the RNG (row 0 ignored; goldens).
  const Tensor* noise = nullptr;
  engine::ProgressFn progress;  ///< called as rows finish: (rows done, rows)
};
struct LimeResult {
  Tensor attributions;            ///< x's shape: ridge coefficients (per feature or superpixel)
  std::vector<double> r2;         ///< weighted R^2 of the local surrogate (lime's `score`)
  std::vector<double> intercept;  ///< surrogate intercept
  std::vector<double> local_pred; ///< surrogate prediction at x
};
/// LIME (Ribeiro et al. 2016) as the lime package. Tabular: Gaussian perturbations around x
/// scaled by the background std (sample_around_instance=True, no discretisation), distance on
/// standardised features, kernel sqrt(exp(-d^2/w^2)), weighted Ridge on standardised features.
/// Image: random on/off superpixels (off = superpixel mean), cosine distance to all-on.
LimeResult lime(const Model& model, const Tensor& x, const Tensor& background, const std::vector<int64_t>& targets,
                const LimeOptions& opts = {});

struct PermutationOptions {
  int repeats = 5;   ///< sklearn.inspection.permutation_importance default n_repeats
  uint64_t seed = 0;
  int64_t batch_rows = 4096;
  std::vector<int64_t> groups;  ///< group id per element of a sample; empty = per element
};
struct PermutationResult {
  double baseline_accuracy = 0;
  std::vector<double> importance_mean;  ///< per feature/group: accuracy drop
  std::vector<double> importance_std;
  Tensor importance;                    ///< one sample's shape, each element its group's mean drop
};
/// Permutation feature importance (Breiman 2001; Fisher et al. 2019): drop of accuracy
/// when one feature column is shuffled across rows, averaged over repeats.
PermutationResult permutation_importance(const Model& model, const Tensor& x, const std::vector<int64_t>& labels,
                                         const PermutationOptions& opts = {});

// ---------------------------------------------------------------- sanity checks

/// Spearman rank correlation (average ranks for ties) of two equally long vectors.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

/// Explainer callback for the sanity checks: attributions of a batch under a model.
using ExplainFn = std::function<Tensor(const Model& model, const Tensor& x)>;

/// Max-sensitivity (Yeh et al. 2019, as Captum's sensitivity_max): max over `samples`
/// uniform perturbations |delta|_inf <= radius of ||A(x+delta) - A(x)||_2 / ||A(x)||_2.
/// Row i's perturbations come from its own stream, seeded seed + 0x9E3779B97F4A7C15 *
/// (row_offset + i), row_offset being x's first row in the whole data set (--shard).
std::vector<double> max_sensitivity(const Model& model, const Tensor& x, const ExplainFn& explain, double radius = 0.02,
                                    int samples = 10, uint64_t seed = 0, int64_t row_offset = 0);

/// Copy of `graph` whose last parameterised layer (the last Gemm/MatMul/Conv node with an
/// initializer weight, in topological order) has weights and bias redrawn from N(0, s^2),
/// s = std of the original weights (Adebayo et al. 2018, "independent randomization" of the
/// top layer). `layer` receives the node's description. Throws InputError when none exists.
engine::Graph randomize_last_layer(const engine::Graph& graph, uint64_t seed, std::string* layer = nullptr);

/// Per-row Spearman correlation of |attributions| from the trained and the randomized model
/// (Adebayo et al. 2018, model-parameter randomization test).
std::vector<double> randomization_correlation(const Tensor& original, const Tensor& randomized);

// ---------------------------------------------------------------- heatmaps

/// PNG bytes: grayscale image (HxW, values in [min,max] rescaled) under a diverging
/// blue-white-red overlay of the attribution (symmetric around 0), upscaled `scale` x nearest.
/// `image` and `attribution` are one sample of shape [C,H,W] or [H,W] (channels averaged).
std::string encode_heatmap_png(const Tensor& image, const Tensor& attribution, int scale = 8);
/// encode_heatmap_png written atomically to `path`.
void write_heatmap_png(const std::string& path, const Tensor& image, const Tensor& attribution, int scale = 8);

}  // namespace mlaudit::explain
