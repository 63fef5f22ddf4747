#pragma once
// Session: a loaded graph bound to a backend, with forward and input-gradient runs.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/model.h"

namespace mlaudit::engine {

enum class Device { Cpu, Cuda, Auto };

/// Parse "cpu", "cuda" or "auto"; throws InputError otherwise.
Device parse_device(const std::string& s);

struct SessionOptions {
  int threads = 0;             ///< 0 = all cores
  Device device = Device::Cpu;
  LoadLimits limits;
  /// CPU forward of single-chain dense models (tabular MLPs) through the fused, cache-blocked
  /// DenseChain instead of op by op; the environment variable MLAUDIT_NO_FUSE=1 turns it off.
  bool fuse_dense = true;
  /// The graph output to audit (by name): the one Model's forward and input_gradient use
  /// (Session::audited_output). Empty: the classifier's probabilities output ("probabilities",
  /// "output_probability") when there is one, else the first float output, with every output
  /// kept in the model's order for run(); when it is named here, it becomes the only output
  /// and the nodes only the others needed are dropped.
  std::string output;
  /// When the audited output is a probability vector (output_is_probability_vector), audit its
  /// logarithm instead: a Clip(p, 1e-30) -> Log pair is appended, so every command that
  /// assumes logits gets valid ones (softmax(log p) = p; cross-entropy and margins unchanged).
  bool logits_from_probabilities = false;
  /// When the audited output has one column ([N,1] or [N]: a binary classifier's single
  /// logit z or probability p = sigmoid(z)), audit two classes instead: [0, z] for a logit
  /// (softmax gives [1 - sigmoid(z), sigmoid(z)]) and [log(1 - p), log p] for a probability
  /// (recognised by a Sigmoid or a LOGISTIC post-transform as its maker). Class 1 is the
  /// positive class, as in PyTorch's BCEWithLogitsLoss and scikit-learn's predict_proba[:, 1].
  bool binary_two_classes = false;
};

/// Set the number of worker threads used by engine kernels (0 = all cores).
void set_num_threads(int n);
int num_threads();

/// Tune glibc's allocator for the engine's repeated same-shape runs: freed activation buffers
/// stay in the heap instead of going back to the OS (mallopt thresholds). A process-wide
/// setting, so the library never does it on its own: executables call it once at start-up
/// (the mlaudit CLI, bench_engine).
void tune_process_allocator();

class Backend;
class Executor;
class DeviceSession;
class DenseChain;

/// A model bound to a backend. run() and gradient() are const and thread-safe.
class Session : public Model {
 public:
  /// Load an ONNX file; throws InputError/UnsupportedError (unsupported ops named).
  static std::unique_ptr<Session> load(const std::string& path, const SessionOptions& opts = {});
  /// Wrap an already-loaded graph.
  Session(Graph graph, const SessionOptions& opts = {});
  ~Session() override;

  const Graph& graph() const { return graph_; }
  const std::vector<ValueInfo>& inputs() const { return graph_.inputs; }
  const std::vector<ValueInfo>& outputs() const { return graph_.outputs; }
  /// Index (into outputs()) of the audited output (see SessionOptions::output).
  size_t audited_index() const { return audited_; }
  const ValueInfo& audited_output() const { return graph_.outputs.at(audited_); }
  /// The device session when running on a device backend (CUDA), else nullptr.
  const DeviceSession* device_session() const { return device_.get(); }
  const Session* device_resident() const override { return device_ ? this : nullptr; }
  /// Name of the backend in use ("cpu", "cuda").
  std::string backend_name() const;
  /// True when forward runs take the fused dense-chain path (see SessionOptions::fuse_dense).
  bool fused() const { return chain_ != nullptr; }
  /// The op that produces the audited output when it already maps logits to probabilities (Softmax,
  /// LogSoftmax, Sigmoid, an ONNX-ML classifier's probabilities), else "": commands that
  /// assume logits warn about it.
  std::string output_activation() const;
  /// True when the audited output is a probability vector over classes: made by Softmax, or by an
  /// ONNX-ML classifier's scores with a SOFTMAX/LOGISTIC post-transform or named as
  /// probabilities (random forests average class frequencies with post_transform NONE).
  bool output_is_probability_vector() const;
  /// The name of the output the model itself produced when SessionOptions::
  /// logits_from_probabilities replaced it by its logarithm, else "".
  const std::string& log_of_output() const { return log_of_; }
  /// The one-column output that SessionOptions::binary_two_classes widened to two classes, else "".
  const std::string& binary_of_output() const { return binary_of_; }
  /// Nodes that stop input gradients to the audited output (see non_differentiable_nodes); empty
  /// when gradients flow. gradient() and input_gradient() refuse such a model.
  const std::vector<const Node*>& gradient_blockers() const { return gradient_blockers_; }
  /// Throws UnsupportedError naming the first gradient blocker and the black-box
  /// alternatives, when there is one; `what` names what needed the gradient.
  void require_gradients(const std::string& what = "input gradients") const;

  /// Forward: one tensor per graph input (in order) -> one per graph output.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;
  /// Vector-Jacobian product. `output_seeds` holds one seed per graph output
  /// (an empty Tensor means zero). Returns d<seeds, outputs>/d input for every
  /// graph input (empty for non-float inputs); fills `outputs` when given.
  std::vector<Tensor> gradient(const std::vector<Tensor>& inputs, const std::vector<Tensor>& output_seeds,
                               std::vector<Tensor>* outputs = nullptr) const;

  // Model interface: first input -> first output.
  Shape input_shape() const override;
  Tensor forward(const Tensor& x) const override;
  Tensor input_gradient(const Tensor& x, const SeedFn& seed, Tensor* output = nullptr) const override;
  /// Through the dense chain's pattern tables when the CPU forward is fused (see
  /// DenseChain::forward_mixtures), else Model's default.
  void forward_mixtures(const std::vector<Mixtures>& batch, const Shape& row_shape, int64_t max_rows, bool ends,
                        MixtureOutputs& out) const override;

 private:
  friend std::map<std::string, Shape> infer_shapes(const Graph& g, const std::vector<Shape>& input_shapes);
  void check_inputs(const std::vector<Tensor>& inputs) const;
  /// The fixed batch size to slice `x` into for a model whose input's dim 0 is fixed and
  /// differs from x's (0: no slicing).
  int64_t fixed_batch_split(const Tensor& x) const;
  Graph graph_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<DeviceSession> device_;  ///< set when running on a device backend (CUDA)
  std::unique_ptr<DenseChain> chain_;      ///< fused CPU forward when the graph is a dense chain
  std::vector<const Node*> gradient_blockers_;
  std::string log_of_;
  std::string binary_of_;
  size_t audited_ = 0;
};

/// The index of the audited output (see SessionOptions::output); with a name, the graph is
/// pruned to that one output (index 0). Throws InputError naming the available outputs.
size_t select_output(Graph& g, const std::string& name);

}  // namespace mlaudit::engine
