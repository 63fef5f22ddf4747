// mlaudit init: a starter audit.yaml for one model, its sections and gates chosen from the
// model's input (image [N,C,H,W] or rows [N,F]), its classes, whether gradients flow and
// whether the verifier reads it, and from the data (domain, feature scales, class balance,
// accuracy today). Every line carries a comment saying what it does and what to change; the
// file is checked with `mlaudit audit --check` before init reports success.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>

#include "command.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "version.h"
#ifdef MLAUDIT_HAVE_verify
#include "mlaudit/verify/network.h"
#endif

namespace fs = std::filesystem;

namespace mlaudit::cli {
namespace {

InputError init_error(const std::string& msg) { return InputError("init", msg); }

// Rows each expensive section uses by default (YAML `limit`): enough for a first reading in
// minutes on two cores; the comments say to raise them for a release audit.
constexpr int64_t kAttackRows = 100;
constexpr int64_t kCertifyRows = 20;
constexpr int64_t kImageExplainRows = 8;
constexpr int64_t kTabularExplainRows = 20;
constexpr int64_t kVerifyRows = 10;
constexpr int64_t kPermutationRows = 2000;

// The gate rules. Thresholds are these fractions of what the model scores today on the same
// rows, so a gate says "the model keeps at least this share of its own clean accuracy".
constexpr double kKeepUnderSmallAttack = 0.5;  // one grey level (1/255) or 1% of a feature's spread
constexpr double kKeepUnderCorruption = 0.75;  // standard CIFAR-10 models keep about 3/4 on CIFAR-10-C
constexpr double kRegressionMargin = 0.02;     // two accuracy points below today's value on the same rows

// ---------------------------------------------------------------- YAML text with comments

// One YAML line and its comment; `active == false` writes the line itself as a comment (a
// section the user can switch on by removing the '# ').
struct Line {
  std::string text, comment;
  bool active = true;
};

class YamlWriter {
 public:
  void blank() { lines_.push_back({"", "", true}); }
  // A comment on a line of its own, at `indent`.
  void note(int indent, const std::string& text) { lines_.push_back({std::string(size_t(indent), ' ') + "# " + text, "", true}); }
  void line(int indent, const std::string& text, const std::string& comment) {
    lines_.push_back({std::string(size_t(indent), ' ') + text, comment, active_});
  }
  void set_active(bool active) { active_ = active; }
  bool active() const { return active_; }
  std::string str() const {
    std::string out;
    for (const auto& l : lines_) {
      std::string text = l.active ? l.text : comment_out(l.text);
      if (l.comment.empty()) {
        out += text + "\n";
      } else if (text.size() <= kCommentColumn - 2) {
        out += fmt::format("{:<{}}# {}\n", text, kCommentColumn, l.comment);
      } else {
        // a long line: its comment goes on the line above, at the same indent
        const size_t indent = text.find_first_not_of(' ');
        out += std::string(indent == std::string::npos ? 0 : indent, ' ') + "# " + l.comment + "\n" + text + "\n";
      }
    }
    return out;
  }

 private:
  static constexpr size_t kCommentColumn = 44;
  static std::string comment_out(const std::string& text) {
    const size_t indent = text.find_first_not_of(' ');
    if (indent == std::string::npos) return text;
    return text.substr(0, indent) + "# " + text.substr(indent);
  }
  std::vector<Line> lines_;
  bool active_ = true;
};

// A YAML scalar: plain when it cannot be misread, else single-quoted ('' escapes ').
std::string yaml_scalar(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s) plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./-+", c));
  if (plain && (s[0] == '-' || s[0] == '.')) plain = s.size() > 1 && s[0] == '.' && s[1] == '.';  // ../x is fine
  if (plain) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

std::string yaml_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t k = 0; k < items.size(); ++k) out += (k ? ", " : "") + yaml_scalar(items[k]);
  return out + "]";
}

// Numbers as people write them: 0.85, 0.0015 (no trailing zeros).
std::string num(double v) { return fmt::format("{:.6g}", v); }
// A gate argument that must match a section value within 1e-6 (same_number, reports/src/sections/metrics.h).
std::string exact(double v) { return fmt::format("{:.10g}", v); }
double floor_to(double v, double step) { return std::floor(v / step + 1e-9) * step; }
double ceil_to(double v, double step) { return std::ceil(v / step - 1e-9) * step; }

// `path` as the config should name it: relative to the config's folder (docs/audit.md: relative
// paths resolve against the config file's folder), absolute when no relative path exists.
std::string config_path(const std::string& path, const fs::path& config_dir) {
  std::error_code ec;
  const fs::path abs = fs::absolute(path, ec).lexically_normal();
  if (ec) return path;
  // relative when both lie under one top folder (a project: the config moves with it), else
  // absolute (../../work/x from /tmp helps no one)
  auto top = [](const fs::path& p) { return std::next(p.begin()) == p.end() ? fs::path() : *std::next(p.begin()); };
  if (top(abs) != top(config_dir)) return abs.string();
  const fs::path rel = abs.lexically_relative(config_dir);
  return rel.empty() ? abs.string() : rel.string();
}

// A model or data set id from a file name: letters, digits and '_' ("fmnist_cnn").
std::string id_from(const std::string& path, const std::string& fallback) {
  std::string id;
  for (char c : fs::path(path).stem().string()) id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (id.empty() || std::isdigit(static_cast<unsigned char>(id[0]))) id = fallback + (id.empty() ? "" : "_" + id);
  return id;
}

// ---------------------------------------------------------------- what init learns

enum class InputKind { Image, Tabular, Other };

struct ModelFacts {
  std::string path, id;
  engine::Shape input;  // the graph input's declared shape
  std::string input_name, output_name;
  engine::DType input_dtype = engine::DType::Float32;
  InputKind kind = InputKind::Other;
  int64_t classes = 0;
  bool binary_widened = false;  // one output column audited as two classes
  bool differentiable = false;
  std::string gradient_blocker;  // the first node that stops gradients
  bool verifiable = false;
  std::string verify_reason;  // why the verifier cannot read the model
  int64_t relus = 0;
};

// Accuracy of the model on the first `rows` rows.
struct Accuracy {
  int64_t correct = 0, rows = 0;
  double value() const { return rows ? double(correct) / double(rows) : 0.0; }
};

struct DataFacts {
  bool present = false;
  bool csv = false;
  std::string data, labels;      // .npy inputs and labels
  std::string id = "test";
  int64_t rows = 0;
  engine::Shape row_shape;       // per-row shape
  double min = 0, max = 0;       // over every value
  double min_feature_std = 0;    // tabular: smallest non-zero per-feature standard deviation
  std::string min_std_feature;   // its index or name
  std::vector<int64_t> class_counts;
  std::vector<int64_t> predictions;  // argmax per row
  std::vector<int64_t> y;
  Accuracy accuracy(int64_t first_rows) const {
    Accuracy a;
    a.rows = std::min<int64_t>(first_rows <= 0 ? rows : first_rows, rows);
    for (int64_t i = 0; i < a.rows; ++i) a.correct += predictions[size_t(i)] == y[size_t(i)];
    return a;
  }
  double majority_rate() const {
    int64_t best = 0;
    for (auto c : class_counts) best = std::max(best, c);
    return rows ? double(best) / double(rows) : 0.0;
  }
};

struct TableFacts {
  bool present = false;
  std::string path, id = "table", label;
  std::vector<std::string> features;                       // model input columns
  std::string features_file;                               // when the user named a file
  std::vector<std::string> protected_attributes;
  std::map<std::string, std::string> bins;                 // numeric protected column -> bins spec
  bool counterfactual = false;                             // every protected attribute is a model feature
};

ModelFacts read_model(const std::string& path, const engine::Session* session) {
  ModelFacts m;
  m.path = path;
  m.id = id_from(path, "model");
  if (session->inputs().size() != 1)
    throw init_error(fmt::format("{}: the model has {} inputs; the audit's sections feed one input tensor", path,
                                 session->inputs().size()));
  m.input = session->inputs()[0].shape;
  m.input_name = session->inputs()[0].name;
  m.input_dtype = session->inputs()[0].dtype;
  m.output_name = session->audited_output().name;
  m.binary_widened = !session->binary_of_output().empty();
  m.differentiable = session->gradient_blockers().empty();
  if (!m.differentiable) {
    const engine::Node* n = session->gradient_blockers().front();
    m.gradient_blocker = fmt::format("{} ({})", n->name, n->domain.empty() ? n->op_type : n->domain + "." + n->op_type);
  }
#ifdef MLAUDIT_HAVE_verify
  try {
    const verify::Network net = verify::network_from_graph(session->graph());
    m.verifiable = true;
    m.relus = net.relu_count();
  } catch (const InputError& e) {
    m.verify_reason = e.what();
  }
#else
  m.verify_reason = "this build has no verify module";
#endif
  return m;
}

// Forward every row in batches; predictions are the argmax class (a one-column output widened to two).
std::vector<int64_t> predict(const engine::Session& model, const engine::Tensor& x) {
  std::vector<int64_t> out;
  constexpr int64_t kBatch = 256;
  for (int64_t b = 0; b < x.dim(0); b += kBatch) {
    const engine::Tensor y = model.forward(x.slice_rows(b, std::min(x.dim(0), b + kBatch)));
    const int64_t c = y.dim(1);
    for (int64_t i = 0; i < y.dim(0); ++i) {
      const float* row = y.f32() + i * c;
      out.push_back(int64_t(std::max_element(row, row + c) - row));
    }
  }
  return out;
}

void describe_values(DataFacts& d, const engine::Tensor& x) {
  const float* p = x.f32();
  const int64_t n = x.numel();
  d.min = n ? p[0] : 0;
  d.max = n ? p[0] : 0;
  for (int64_t i = 0; i < n; ++i) d.min = std::min<double>(d.min, p[i]), d.max = std::max<double>(d.max, p[i]);
  if (x.rank() == 2 && x.dim(0) > 1) {
    const int64_t rows = x.dim(0), f = x.dim(1);
    d.min_feature_std = 0;
    for (int64_t j = 0; j < f; ++j) {
      double mean = 0, sq = 0;
      for (int64_t i = 0; i < rows; ++i) mean += p[i * f + j];
      mean /= double(rows);
      for (int64_t i = 0; i < rows; ++i) sq += (p[i * f + j] - mean) * (p[i * f + j] - mean);
      const double sd = std::sqrt(sq / double(rows));
      if (sd > 0 && (d.min_feature_std == 0 || sd < d.min_feature_std)) d.min_feature_std = sd, d.min_std_feature = std::to_string(j);
    }
  }
}

void count_classes(DataFacts& d, int64_t classes) {
  d.class_counts.assign(size_t(std::max<int64_t>(classes, 1)), 0);
  for (auto v : d.y)
    if (v >= 0 && v < classes) ++d.class_counts[size_t(v)];
}


// Model input columns of a CSV: --features, else every column but the label (and, when that is one
// too many, but the protected columns) when the count matches the model's input width.
std::vector<std::string> table_features(const datasets::CsvTable& t, const std::string& label,
                                        const std::vector<std::string>& protected_attributes, int64_t width,
                                        const std::string& path) {
  std::vector<std::string> all;
  for (const auto& c : t.columns)
    if (c != label) all.push_back(c);
  if (width <= 0 || int64_t(all.size()) == width) return all;
  std::vector<std::string> without;
  for (const auto& c : all)
    if (std::find(protected_attributes.begin(), protected_attributes.end(), c) == protected_attributes.end()) without.push_back(c);
  if (int64_t(without.size()) == width) return without;
  throw init_error(fmt::format("{}: {} columns besides '{}' but the model takes {} inputs: name its input columns with "
                               "--features a,b,c or @FILE",
                               path, all.size(), label, width));
}

// ---------------------------------------------------------------- the config

struct InitOptions {
  fs::path out;
  fs::path config_dir;
  std::string background;  // .npy rows for KernelSHAP (tabular)
  int64_t limit = 0;       // caps every section's rows (0: the defaults above)
};

int64_t rows_for(int64_t default_rows, const InitOptions& o, int64_t available) {
  int64_t r = o.limit > 0 ? std::min(default_rows, o.limit) : default_rows;
  return std::min(r, available > 0 ? available : r);
}

// [N,1,28,28]: the batch axis as N, other free axes as ?.
std::string shape_text(const engine::Shape& shape) {
  std::string s;
  for (size_t k = 0; k < shape.size(); ++k)
    s += (k ? "," : "") + (shape[k] >= 0 ? std::to_string(shape[k]) : k == 0 ? std::string("N") : std::string("?"));
  return "[" + s + "]";
}

std::string input_kind_text(const ModelFacts& m, const engine::Shape& row) {
  const std::string shape = shape_text(m.input);
  switch (m.kind) {
    case InputKind::Image: return fmt::format("images {}", shape);
    case InputKind::Tabular: return fmt::format("rows {} of {} features", shape, row.empty() ? 0 : row[0]);
    case InputKind::Other: return fmt::format("{} {}", engine::dtype_name(m.input_dtype), shape);
  }
  return shape;
}

// Pixel domain of image data and the "one grey level" unit of eps.
struct ImageScale {
  double lo = 0, hi = 1;
  std::string domain_text, grey_level_text;  // "[0, 1]", "1/255"
  double grey_level = 1.0 / 255.0;
  std::string why;
};

ImageScale image_scale(const DataFacts& d) {
  ImageScale s;
  if (!d.present || (d.min >= 0 && d.max <= 1)) {
    s.domain_text = "[0, 1]", s.grey_level_text = "1/255", s.why = "pixels in [0, 1] (pixel/255)";
  } else if (d.min >= 0 && d.max <= 255) {
    s.hi = 255, s.domain_text = "[0, 255]", s.grey_level = 1, s.grey_level_text = "1", s.why = "pixels in [0, 255]";
  } else {
    // normalised images ((pixel - mean) / std): the observed range; the exact one is the
    // normalisation of [0, 1], per channel
    s.lo = d.min, s.hi = d.max, s.grey_level = (d.max - d.min) / 255.0;
    s.domain_text = fmt::format("[{}, {}]", num(floor_to(d.min, 0.001)), num(ceil_to(d.max, 0.001)));
    s.lo = floor_to(d.min, 0.001), s.hi = ceil_to(d.max, 0.001);
    s.grey_level_text = num(s.grey_level);
    s.why = "the range observed in the data (normalised pixels?): replace it with the normalisation of [0, 1]";
  }
  return s;
}

// eps as written in the section ("8/255") and as the gate's number.
struct Radius {
  std::string text;
  double value = 0;
};

std::vector<Radius> image_radii(const ImageScale& s, std::initializer_list<double> grey_levels) {
  std::vector<Radius> out;
  for (double k : grey_levels) {
    Radius r;
    r.value = k * s.grey_level;
    if (s.grey_level_text == "1/255") {
      r.text = fmt::format("{}/255", num(k));
    } else {
      r.text = num(r.value);
      r.value = std::stod(r.text);  // the section's value as written, so the gate matches it
    }
    out.push_back(r);
  }
  return out;
}

std::string radii_list(const std::vector<Radius>& radii) {
  std::string out = "[";
  for (size_t k = 0; k < radii.size(); ++k) out += (k ? ", " : "") + radii[k].text;
  return out + "]";
}

struct Gate {
  std::string check, name, severity, description;
};

std::string write_config(const ModelFacts& m, const DataFacts& d, const TableFacts& t, const InitOptions& o,
                         const GlobalOptions& global, std::vector<std::string>& sections_written,
                         std::vector<Gate>& gates) {
  YamlWriter y;
  const fs::path& dir = o.config_dir;
  const engine::Shape row = d.present ? d.row_shape : engine::Shape(m.input.begin() + (m.input.empty() ? 0 : 1), m.input.end());
  const bool has_npy = d.present && !d.csv;
  const bool image = m.kind == InputKind::Image, tabular = m.kind == InputKind::Tabular;
  const std::string data_id = has_npy ? d.id : "test";
  const ImageScale scale = image_scale(d);

  // ---- header: what init saw and how to use the file
  y.note(0, fmt::format("Starter audit for {}, written by `mlaudit init` (mlaudit {}).", config_path(m.path, dir), MLAUDIT_VERSION));
  y.note(0, fmt::format("Model: input '{}' {}; output '{}'{}: {} classes{}.", m.input_name, input_kind_text(m, row),
                        m.output_name, m.binary_widened ? " (one column, audited as two classes)" : "", m.classes,
                        m.differentiable ? ", gradients flow" : fmt::format(", not differentiable at {}", m.gradient_blocker)));
  if (d.present) {
    const Accuracy a = d.accuracy(0);
    y.note(0, fmt::format("Data: {}, {} rows, values in [{}, {}]; accuracy measured by init: {} ({} of {}); most frequent class: {} of the rows.",
                          config_path(d.csv ? t.path : d.data, dir), d.rows, num(d.min), num(d.max), num(a.value()), a.correct,
                          a.rows, num(d.majority_rate())));
  } else {
    y.note(0, "Data: none given (--data), so only the efficiency section is active; the data sections are written");
    y.note(0, "below as comments: point 'datasets' at your held-out data and remove the '# ' in front of them.");
  }
  y.note(0, "Gate thresholds follow the rules stated in each gate's description; change them to your release bar.");
  y.note(0, fmt::format("Check it: mlaudit audit --config {} --check", o.out.filename().string()));
  y.note(0, fmt::format("Run it:   mlaudit audit --config {} --out audit-report", o.out.filename().string()));
  y.note(0, "Every key and metric: docs/audit.md. Relative paths resolve against this file's folder.");
  y.line(0, "version: 1", "config format version (only 1 exists)");
  y.line(0, "system:", "free text for the report's 'system and intended use' (EU AI Act Annex IV material)");
  y.line(2, "name: " + yaml_scalar(m.id), "the system's name in the report: your product's name");
  y.line(2, "description: " + yaml_scalar(fmt::format("{}: input {}, {} classes", fs::path(m.path).filename().string(),
                                                       shape_text(m.input), m.classes)),
         "what the model does: replace with a sentence a reader of the report understands");
  y.note(2, "intended_use: ...            what it decides, for whom (add it: regulators read this first)");
  y.note(2, "out_of_scope: ...            uses it must not be put to");
  y.line(0, "seed: 0", "seed of every section that samples (attack restarts, bootstrap, noise)");
  y.blank();

  // ---- models and data
  y.line(0, "models:", "model id -> ONNX file");
  if (global.model_output.empty())
    y.line(2, fmt::format("{}: {}", m.id, yaml_scalar(config_path(m.path, dir))), "the model under audit (path relative to this file)");
  else
    y.line(2, fmt::format("{}: {{path: {}, output: {}}}", m.id, yaml_scalar(config_path(m.path, dir)), yaml_scalar(m.output_name)),
           "the model under audit and the output to audit (--output)");
  y.set_active(d.present);  // without data the data set is a template, written as comments
  y.line(0, "datasets:", "data set id -> files; use held-out rows the model was not trained on");
  if (d.present && !d.csv) {
    y.line(2, d.id + ":", "the evaluation rows");
    y.line(4, "data: " + yaml_scalar(config_path(d.data, dir)), fmt::format("inputs .npy {}", engine::shape_str([&] {
                                                                      engine::Shape s = row;
                                                                      s.insert(s.begin(), d.rows);
                                                                      return s;
                                                                    }())));
    y.line(4, "labels: " + yaml_scalar(config_path(d.labels, dir)), fmt::format("integer labels .npy [{}], classes 0..{}", d.rows, m.classes - 1));
  } else if (!d.present) {
    y.line(2, "test:", "the evaluation rows (replace the paths below with your files)");
    y.line(4, "data: x_test.npy", fmt::format("inputs .npy [N{}{}] float32", row.empty() ? "" : ",",
                                             [&] {
                                               std::string s;
                                               for (auto v : row) s += (s.empty() ? "" : ",") + (v < 0 ? std::string("?") : std::to_string(v));
                                               return s;
                                             }()));
    y.line(4, "labels: y_test.npy", "integer labels .npy [N]");
  }
  // the input domain: attacks and verification search inside it; data outside it is refused
  std::string domain_text, domain_why;
  if (image) {
    domain_text = scale.domain_text, domain_why = scale.why;
  } else if (!d.present || (d.min >= 0 && d.max <= 1)) {
    domain_text = "[0, 1]", domain_why = "every value lies in [0, 1]";
  } else if (d.min >= 0) {
    domain_text = "[0, .inf]", domain_why = "every value is >= 0; no upper bound";
  } else {
    domain_text = "[-.inf, .inf]";
    domain_why = "values of both signs: no bound (state a box if your features have one)";
  }
  if (!d.present || !d.csv)
    y.line(4, "domain: " + domain_text, "input domain (attacks and verification stay inside it): " + domain_why);
  y.set_active(true);
  if (t.present) {
    y.line(2, t.id + ":", "a CSV table with a header: fairness (and performance) read it");
    y.line(4, "csv: " + yaml_scalar(config_path(t.path, dir)), "the table");
    y.line(4, "label: " + yaml_scalar(t.label), "the true label column (class indices; 1 = the favourable outcome)");
    if (!t.protected_attributes.empty())
      y.line(4, "protected: " + yaml_list(t.protected_attributes), "protected attributes (groups compared by fairness)");
    if (!t.features_file.empty())
      y.line(4, "features: " + yaml_scalar(config_path(t.features_file, dir)), "the model's input columns, in order (one per line)");
    else
      y.line(4, "features: " + yaml_list(t.features), "the model's input columns, in order");
  }
  y.blank();

  // ---- sections
  y.line(0, "sections:", "what to measure: one entry per section run (docs/audit.md lists every key)");
  const std::string& model_id = m.id;
  const double acc_all = d.present ? d.accuracy(0).value() : 0;
  // sections and gates written as comments (no data yet) are not counted and get no gates
  auto section_written = [&](const std::string& kind) {
    if (y.active()) sections_written.push_back(kind);
  };
  auto add_gate = [&](Gate g) {
    if (y.active()) gates.push_back(std::move(g));
  };
  auto entry_head = [&](const std::string& kind, const std::string& data, const std::string& comment) {
    section_written(kind);
    y.line(2, kind + ":", comment);
    y.line(4, "- model: " + model_id, "the model id above");
    if (!data.empty()) y.line(6, "data: " + data, "the data set id above");
  };

  // performance: in-process accuracy with a bootstrap interval
  y.set_active(d.present);
  entry_head("performance", d.csv ? t.id : data_id, "accuracy on every row, 95% percentile-bootstrap interval, per-class accuracy");
  y.line(6, "bootstrap: 1000", "bootstrap resamples of the interval (Efron & Tibshirani); 1000 is the usual choice");
  y.set_active(true);
  // efficiency: needs no data
  section_written("efficiency");
  y.line(2, "efficiency:", "parameters, FLOPs, latency p50/p99 at batch 1, throughput, peak memory (this machine)");
  y.line(4, "- model: " + model_id, "the model id above");
  y.line(6, "runs: 50", "timed runs at batch 1 (p99 needs >= 50)");
  y.line(6, "batch: 256", "batch size of the throughput run: your serving batch size");

  const bool data_sections = has_npy || !d.present;
  y.set_active(has_npy);
  if (data_sections && (image || tabular)) {
    // robustness: PGD when gradients flow, else Square (black-box, score-based)
    const int64_t rows = rows_for(kAttackRows, o, d.rows);
    const std::string attack = m.differentiable ? "pgd" : "square";
    std::vector<Radius> radii;
    std::string eps_why;
    if (image) {
      radii = image_radii(scale, {1, 2, 8});
      eps_why = fmt::format("L-inf radii in input units: 1 and 2 grey levels, and 8/255, the usual benchmark radius (RobustBench){}",
                            scale.grey_level_text == "1/255" ? "" : fmt::format(" (one grey level = {})", scale.grey_level_text));
    } else {
      const double sd = d.min_feature_std > 0 ? d.min_feature_std : 1.0;
      for (double f : {0.01, 0.05, 0.1}) {
        const double v = std::stod(fmt::format("{:.2g}", f * sd));
        radii.push_back({num(v), v});
      }
      // the tightest feature by name when the CSV names the model's columns, else by column index
      std::string tightest = d.csv ? "'" + d.min_std_feature + "'" : "column " + d.min_std_feature;
      if (!d.csv && t.present && !d.min_std_feature.empty() && std::stoul(d.min_std_feature) < t.features.size())
        tightest = "'" + t.features[std::stoul(d.min_std_feature)] + "'";
      eps_why = d.present ? fmt::format("1%, 5%, 10% of the smallest feature standard deviation ({} of {}): one L-inf radius "
                                        "moves every feature by the same amount, so it is sized by the tightest one",
                                        num(sd), tightest)
                          : "1%, 5%, 10% of a feature's standard deviation: size them by your tightest feature";
    }
    y.line(2, "robustness:", fmt::format("adversarial robustness: `mlaudit attack`, robust accuracy per eps with 95% intervals"));
    section_written("robustness");
    y.line(4, "- model: " + model_id, "the model id above");
    y.line(6, "data: " + data_id, "the data set id above");
    y.line(6, "attacks: [" + attack + "]",
           m.differentiable ? "PGD (Madry et al. 2018); add apgd-ce or autoattack for a stronger, parameter-free evaluation"
                            : "Square (black-box: the model has no gradients); add more queries for a stronger one");
    y.line(6, "norm: linf", "L-inf ball: every input element moves by at most eps");
    y.line(6, "eps: " + radii_list(radii), eps_why);
    if (m.differentiable) y.line(6, "steps: 20", "PGD iterations (step 2.5 eps/steps); 50-100 for a release audit");
    else y.line(6, "queries: 1000", "model queries per row (Square's paper uses 10000 for a release-grade result)");
    y.line(6, fmt::format("limit: {}", rows), "first N rows attacked (intervals narrow with more; all rows for a release audit)");
    const double keep = floor_to(kKeepUnderSmallAttack * d.accuracy(rows).value(), 0.01);
    add_gate({fmt::format("robust_accuracy({}, linf, {}) >= {}", attack, exact(radii[0].value), num(keep)),
                     fmt::format("robust to the smallest perturbation (eps {})", radii[0].text), "error",
                     fmt::format("rule: the model keeps at least half of its clean accuracy ({} on these {} rows, measured by "
                                 "init) under the smallest radius, {}{}",
                                 num(d.accuracy(rows).value()), rows, radii[0].text,
                                 image ? ", one grey level, below what 8-bit rounding changes" : ", 1% of the tightest feature's spread")});
    add_gate({fmt::format("robust_accuracy({}, linf, {}) >= {}", attack, exact(radii.back().value), num(keep)),
                     image ? fmt::format("robust at the benchmark radius (eps {})", radii.back().text)
                           : fmt::format("robust at the largest radius (eps {})", radii.back().text),
                     "warning",
                     fmt::format("the same rule at the largest radius ({}{}); models without adversarial training usually "
                                 "fail it, hence a warning: make it an error once the model is trained for it",
                                 radii.back().text, image ? "" : ", 10% of the tightest feature's spread")});

    // corruption: images in [0, 1] (the CIFAR-10-C definitions clip to it); tabular noise and dropout
    const bool corruption = tabular || (image && scale.domain_text == "[0, 1]");
    if (corruption) {
      section_written("corruption");
      y.line(2, "corruption:", "common corruptions (Hendrycks & Dietterich 2019): accuracy per corruption and severity");
      y.line(4, "- model: " + model_id, "the model id above");
      y.line(6, "data: " + data_id, "the data set id above");
      if (image)
        y.line(6, "corruptions: [gaussian_noise, shot_noise, impulse_noise, gaussian_blur, contrast, brightness, pixelate, jpeg_compression]",
               "the CIFAR-10-C definitions this build has (all of them)");
      else
        y.line(6, "corruptions: [feature_noise, feature_dropout]", "Gaussian noise scaled by each column's std; columns set to their mean");
      y.line(6, "severities: [1, 3, 5]", "CIFAR-10-C severities 1 (mild) to 5 (severe); [1, 2, 3, 4, 5] for all");
      add_gate({fmt::format("mean_corruption_accuracy() >= {}", num(floor_to(kKeepUnderCorruption * acc_all, 0.01))),
                       "accuracy under common corruptions", "warning",
                       fmt::format("rule: mean accuracy over corruptions and severities at least 3/4 of the clean accuracy "
                                   "({} measured by init), about what standard CIFAR-10 networks keep on CIFAR-10-C "
                                   "(Hendrycks & Dietterich 2019)",
                                   num(acc_all))});
    } else if (image) {
      y.note(2, fmt::format("corruption: not written: the image corruptions are defined on pixels in [0, 1], the data is in {}", scale.domain_text));
    }

    // certification: randomized smoothing for images
    if (image) {
      const int64_t crows = rows_for(kCertifyRows, o, d.rows);
      const double range = scale.hi - scale.lo;
      section_written("certification");
      y.line(2, "certification:", "randomized smoothing (Cohen et al. 2019): certified L2 radius per image");
      y.line(4, "- model: " + model_id, "the model id above");
      y.line(6, "data: " + data_id, "the data set id above");
      y.line(6, "sigma: " + num(0.25 * range), "Gaussian noise std (input units): Cohen et al.'s 0.25, as a share of the pixel range");
      y.line(6, "n0: 100", "noisy samples to pick the top class");
      y.line(6, "n: 1000", "noisy samples to bound its probability; 100000 (the paper's) for a release audit");
      y.line(6, "radii: [" + num(0) + ", " + num(0.25 * range) + ", " + num(0.5 * range) + "]", "radii at which certified accuracy is reported");
      y.line(6, fmt::format("limit: {}", crows), "first N images (each costs n0 + n forward passes)");
      y.note(6, "no gate: a model not trained with Gaussian noise certifies little; once it is, add e.g.");
      y.note(6, fmt::format("'- certified_accuracy({}) >= 0.5' under gates", num(0.25 * range)));
    }

    // explanations
    y.line(2, "explanations:", "attributions: which inputs drive the decisions, with sanity checks");
    section_written("explanations");
    if (image) {
      const int64_t erows = rows_for(kImageExplainRows, o, d.rows);
      y.line(4, "- model: " + model_id, "the model id above");
      y.line(6, "data: " + data_id, "the data set id above");
      if (m.differentiable) {
        y.line(6, "method: integrated-gradients", "Integrated Gradients (Sundararajan et al. 2017), black-image baseline");
        y.line(6, "steps: 50", "Riemann steps of the path integral (20-300 in the paper)");
        add_gate({"ig_completeness_gap() <= 0.05", "integrated gradients add up (completeness)", "error",
                         "rule: attributions sum to F(x) - F(baseline) within 5%, the accuracy Sundararajan et al. (2017) "
                         "ask of the integral's approximation; a larger gap means too few steps or a broken gradient"});
      } else {
        y.line(6, "method: occlusion", "occlusion (Zeiler & Fergus 2014): the model has no gradients, so a black-box method");
      }
      y.line(6, "heatmaps: true", "save a heatmap per image (report and sections/)");
      y.line(6, fmt::format("limit: {}", erows), "first N images explained");
    } else {
      const int64_t erows = rows_for(kTabularExplainRows, o, d.rows);
      if (!o.background.empty()) {
        y.line(4, "- model: " + model_id, "the model id above");
        y.line(6, "data: " + data_id, "the data set id above");
        y.line(6, "method: kernel-shap", "KernelSHAP (Lundberg & Lee 2017): per-row feature contributions");
        y.line(6, "background: " + yaml_scalar(config_path(o.background, dir)), "background rows (training data sample) the features are replaced with");
        y.line(6, fmt::format("limit: {}", erows), "first N rows explained");
        add_gate({"kernel_shap_efficiency_gap() <= 0.00001", "KernelSHAP values add up (efficiency)", "error",
                         "rule: contributions sum to f(x) - E[f(background)]; KernelSHAP imposes it exactly, so a gap above "
                         "float rounding (1e-5) means a broken run"});
      } else {
        y.note(4, "KernelSHAP (per-row contributions) needs background rows: run init with --background B.npy");
      }
      y.line(4, "- model: " + model_id, "the model id above");
      y.line(6, "data: " + data_id, "the data set id above");
      y.line(6, "method: permutation", "permutation importance (Breiman 2001): accuracy drop when a column is shuffled");
      y.line(6, fmt::format("limit: {}", rows_for(kPermutationRows, o, d.rows)), "rows the accuracy is measured on");
    }

    // verification: only for networks the verifier reads (ReLU networks of affine layers, conv, pooling)
    if (m.verifiable) {
      const int64_t vrows = rows_for(kVerifyRows, o, d.rows);
      Radius v;
      if (image) {
        v = image_radii(scale, {0.5}).front();
      } else {
        v = radii.front();
      }
      section_written("verification");
      y.line(2, "verification:", fmt::format("formal proof of local robustness (bound propagation, branch and bound, Z3); {} ReLUs", m.relus));
      y.line(4, "- model: " + model_id, "the model id above");
      y.line(6, "data: " + data_id, "the data set id above");
      y.line(6, "eps: [" + v.text + "]", image ? "half a grey level: proofs get much harder as eps grows" : "the smallest attack radius");
      y.line(6, "timeout: 10", "seconds per row; a timeout is reported as such, never as proved");
      y.line(6, fmt::format("limit: {}", vrows), "first N rows");
      add_gate({fmt::format("verified_fraction(linf, {}) >= {}", exact(v.value), num(floor_to(kKeepUnderSmallAttack * d.accuracy(vrows).value(), 0.01))),
                       fmt::format("robustness proved at eps {}", v.text), "warning",
                       fmt::format("rule: robustness proved for at least half the rows the model gets right ({} on these {} rows); "
                                   "a warning, since timeouts count as not proved",
                                   num(d.accuracy(vrows).value()), vrows)});
    } else {
      y.note(2, "verification: not written: " + m.verify_reason);
    }
  } else if (d.csv) {
    y.note(2, "robustness, corruption, explanations, verification: not written: they need the inputs as .npy; run");
    y.note(2, "init with --data X.npy --labels y.npy --table T.csv to get them beside fairness");
  }
  y.set_active(true);

  // fairness: a CSV with protected attributes
  if (t.present && !t.protected_attributes.empty()) {
    section_written("fairness");
    y.line(2, "fairness:", "group fairness (Fairlearn's definitions) with bootstrap intervals");
    y.line(4, "- model: " + model_id, "the model id above");
    y.line(6, "data: " + t.id, "the CSV data set id above");
    y.line(6, "protected: " + yaml_list(t.protected_attributes), "attributes compared (each alone and their intersection)");
    if (!t.bins.empty()) {
      std::string spec;
      for (const auto& [col, b] : t.bins) spec += (spec.empty() ? "" : ";") + col + ":" + b;
      y.line(6, "bins: " + yaml_scalar(spec), "numeric protected columns cut into quartiles (groups of equal size)");
    }
    y.line(6, std::string("counterfactual: ") + (t.counterfactual ? "true" : "false"),
           t.counterfactual ? "flip test: change only the protected attribute, count changed decisions"
                            : "flip test off: a protected attribute is not a model input");
    y.line(6, "bootstrap: 1000", "bootstrap resamples of the intervals");
    y.note(6, "favorable_label: 1        the label value that is good for the person (default 1)");
    y.note(6, "favorable_class: 1        the model class that is the good decision (default 1)");
    for (const auto& a : t.protected_attributes) {
      add_gate({fmt::format("demographic_parity_ratio({}) >= 0.8", a), fmt::format("four-fifths rule on {}", a), "error",
                       "rule: every group's selection rate at least 4/5 of the highest group's (EEOC Uniform Guidelines, "
                       "29 CFR 1607.4(D))"});
      if (t.counterfactual)
        add_gate({fmt::format("counterfactual_flip_rate({}) <= 0.05", a), fmt::format("decisions do not hinge on {}", a),
                         "warning",
                         fmt::format("rule: changing only '{}' changes at most 5% of the decisions; 0 for a model that ignores it", a)});
    }
  } else if (t.present) {
    y.note(2, "fairness: not written: name the protected columns with --protected COL[,COL]");
  } else if (tabular) {
    y.note(2, "fairness: not written: it needs a CSV with a header (--table T.csv --label-column C --protected COL)");
  }
  y.blank();

  // ---- gates
  if (d.present || t.present) {
    const double majority = d.majority_rate();
    gates.insert(gates.begin(),
                 {{fmt::format("accuracy_lower() >= {}", num(ceil_to(majority, 0.001))), "better than guessing the most frequent class",
                   "error",
                   fmt::format("rule: the 95% interval's lower end is above {} of the rows in the most frequent class: a model "
                               "that cannot beat always answering that class with confidence does not ship. Raise it to your "
                               "release requirement",
                               num(majority))},
                  {fmt::format("accuracy() >= {}", num(floor_to(acc_all - kRegressionMargin, 0.001))), "no accuracy regression",
                   "warning",
                   fmt::format("rule: at most 2 points below the {} init measured on these rows: catches a retrained model "
                               "that got worse",
                               num(acc_all))}});
  }
  y.line(0, "gates:", "pass/fail rules on the measured metrics: exit 1 when an error gate fails, 0 when all pass");
  if (gates.empty()) y.note(2, "none: with data, init writes accuracy and robustness gates here");
  for (const auto& g : gates) {
    y.line(2, "- check: " + g.check, g.severity == "error" ? "fails the audit when false" : "reported, does not fail the audit");
    y.line(4, "name: " + yaml_scalar(g.name), "the gate's name in the report and junit.xml");
    y.line(4, "severity: " + g.severity, "error fails the audit (exit 1); warning is only reported");
    y.line(4, "description: " + yaml_scalar(g.description), "why this threshold (shown in the report)");
  }
  return y.str();
}

int cmd_init(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("init options");
  desc.add_options()
      ("model,m", po::value<std::string>(), "ONNX model to audit")
      ("data,d", po::value<std::string>(), "held-out evaluation rows: inputs .npy [N,...] (with --labels), or a CSV with a "
                                           "header (with --label-column; fairness and performance only)")
      ("labels,l", po::value<std::string>(), "integer labels .npy [N] of --data")
      ("table", po::value<std::string>(), "a CSV with a header beside .npy --data: its rows feed fairness (needs --label-column)")
      ("label-column", po::value<std::string>(), "the CSV's true label column (class indices)")
      ("features", po::value<std::string>(), "the CSV's model input columns in order: a,b,c or @FILE (default: every column "
                                             "but the label, or but the label and --protected, whichever matches the model)")
      ("protected", po::value<std::string>(), "protected attribute columns of the CSV, comma-separated: adds a fairness section")
      ("background", po::value<std::string>(), "background rows .npy for KernelSHAP on tabular data (e.g. 100 training rows)")
      ("limit", po::value<int64_t>()->default_value(0), "cap on the rows of every section (0: the defaults: 100 attacked, 20 "
                                                         "certified, 8 images / 20 rows explained, 10 verified, all for accuracy)")
      ("out,o", po::value<std::string>()->default_value("audit.yaml"), "the YAML to write")
      ("force,f", "overwrite --out when it exists");
  po::variables_map vm;
  if (!parse_options("init",
                     "mlaudit init --model M.onnx [--data X.npy --labels y.npy] [--table T.csv | --data T.csv] "
                     "[--label-column C] [--protected A[,B]] [--features a,b,c|@FILE] [--background B.npy] [--out audit.yaml] "
                     "[--force]\n"
                     "Writes a commented starter audit config for the model (sections and gates chosen from its inputs, "
                     "outputs and data),\nchecks it with 'mlaudit audit --check', and prints the commands that run it.",
                     desc, args, vm, {"model"}))
    return 0;
  InitOptions o;
  o.out = vm["out"].as<std::string>();
  o.limit = vm["limit"].as<int64_t>();
  if (o.limit < 0) throw init_error("--limit must be >= 0");
  std::error_code ec;
  if (fs::exists(o.out, ec) && !vm.count("force"))
    throw init_error(fmt::format("{} exists; give --force to overwrite it, or another --out", o.out.string()));
  if (fs::is_directory(o.out, ec)) throw init_error(fmt::format("--out {} is a folder; name the YAML file to write", o.out.string()));
  o.config_dir = fs::absolute(o.out, ec).lexically_normal().parent_path();
  if (!fs::is_directory(o.config_dir, ec))
    throw init_error(fmt::format("--out {}: folder {} does not exist", o.out.string(), o.config_dir.string()));
  if (vm.count("background")) {
    o.background = vm["background"].as<std::string>();
    if (!fs::is_regular_file(o.background, ec)) throw init_error(fmt::format("--background {}: file not found", o.background));
  }

  // ---- the model
  const std::string model_path = vm["model"].as<std::string>();
  if (!fs::is_regular_file(model_path, ec)) throw init_error(fmt::format("--model {}: file not found", model_path));
  engine::SessionOptions so;
  so.threads = global.threads;
  so.output = global.model_output;
  so.binary_two_classes = true;  // a one-column output is two classes, as every classification command reads it
  const auto session = engine::Session::load(model_path, so);
  ModelFacts m = read_model(model_path, session.get());

  // ---- the data: .npy rows and labels, and/or a CSV table
  const std::string data = vm.count("data") ? vm["data"].as<std::string>() : "";
  const bool data_csv = data.size() > 4 && (data.substr(data.size() - 4) == ".csv" || data.substr(data.size() - 4) == ".CSV");
  if (vm.count("table") && data_csv) throw init_error("--table is for a CSV beside .npy --data; --data is already a CSV");
  const std::string table_path = vm.count("table") ? vm["table"].as<std::string>() : data_csv ? data : "";
  if (vm.count("labels") && (data.empty() || data_csv))
    throw init_error(data_csv ? "--labels is for .npy --data; a CSV names its label column with --label-column"
                              : "--labels needs --data (the inputs it labels)");
  if (!data.empty() && !data_csv && !vm.count("labels"))
    throw init_error(fmt::format("--data {} needs --labels y.npy (one integer class per row)", data));
  if (!table_path.empty() && !vm.count("label-column"))
    throw init_error(fmt::format("{} needs --label-column (its true label column)", table_path));
  if (table_path.empty()) {
    for (const char* opt : {"label-column", "features", "protected"})
      if (vm.count(opt))
        throw init_error(fmt::format("--{} applies to a CSV: give it with --data T.csv or --table T.csv", opt));
  }
  if (m.input_dtype != engine::DType::Float32 && !data.empty() && !data_csv)
    throw init_error(fmt::format("{}: input '{}' is {}; the audit's data sections feed float32 rows", model_path, m.input_name,
                                 engine::dtype_name(m.input_dtype)));

  DataFacts d;
  if (!data.empty() && !data_csv) {
    LabeledData in = read_labeled_data("init", data, vm["labels"].as<std::string>(), *session);
    d.present = true;
    d.data = data;
    d.labels = vm["labels"].as<std::string>();
    d.id = id_from(data, "data");
    if (d.id == m.id) d.id += "_data";
    d.rows = in.x.dim(0);
    d.row_shape.assign(in.x.shape().begin() + 1, in.x.shape().end());
    d.y = in.y;
    m.classes = in.classes;
    describe_values(d, in.x);
    d.predictions = predict(*session, in.x);
    count_classes(d, m.classes);
  }
  TableFacts t;
  if (!table_path.empty()) {
    t.present = true;
    t.path = table_path;
    t.label = vm["label-column"].as<std::string>();
    const datasets::CsvTable table = datasets::read_csv(table_path);
    table.index(t.label);  // names the available columns when it is missing
    if (vm.count("protected")) t.protected_attributes = split_list(vm["protected"].as<std::string>());
    for (const auto& p : t.protected_attributes) table.index(p);
    const int64_t width = m.input.size() == 2 ? m.input[1] : -1;
    if (vm.count("features")) {
      const std::string spec = vm["features"].as<std::string>();
      t.features = parse_name_list("features", spec);
      const bool file = !spec.empty() && (spec[0] == '@' || (fs::is_regular_file(spec, ec) && spec.find(',') == std::string::npos));
      if (file) t.features_file = spec[0] == '@' ? spec.substr(1) : spec;
      if (width > 0 && int64_t(t.features.size()) != width)
        throw init_error(fmt::format("--features names {} columns, the model takes {} inputs", t.features.size(), width));
    } else {
      t.features = table_features(table, t.label, t.protected_attributes, width, table_path);
    }
    for (const auto& f : t.features) table.index(f);
    // the flip test changes a protected attribute that is a model input
    t.counterfactual = !t.protected_attributes.empty();
    for (const auto& p : t.protected_attributes)
      t.counterfactual = t.counterfactual && std::find(t.features.begin(), t.features.end(), p) != t.features.end();
    // numeric protected columns with many values: quartiles (the fairness command refuses them unbinned)
    for (const auto& p : t.protected_attributes) {
      const auto& col = table.strings(p);
      std::set<std::string> values(col.begin(), col.end());
      bool numeric = true;
      for (const auto& v : values) {
        char* end = nullptr;
        std::strtod(v.c_str(), &end);
        numeric = numeric && !v.empty() && end && *end == '\0';
      }
      if (numeric && values.size() > 10) t.bins[p] = "q4";
    }
    if (!d.present) {
      // the table is the evaluation data: accuracy and class balance from it
      const engine::Tensor x = table.matrix(t.features);
      std::vector<double> labels = table.numbers(t.label);
      d.present = true;
      d.csv = true;
      d.rows = x.dim(0);
      d.row_shape.assign(x.shape().begin() + 1, x.shape().end());
      for (double v : labels) {
        if (v != std::floor(v) || v < 0)
          throw init_error(fmt::format("{}: label column '{}' holds '{}', not a class index", table_path, t.label, num(v)));
        d.y.push_back(int64_t(v));
      }
      m.classes = model_classes("init", *session, x);
      datasets::check_labels(fmt::format("init: {} column '{}'", table_path, t.label), d.y, m.classes);
      describe_values(d, x);
      if (!d.min_std_feature.empty()) d.min_std_feature = t.features[size_t(std::stoll(d.min_std_feature))];
      d.predictions = predict(*session, x);
      count_classes(d, m.classes);
    }
  }
  if (!d.present && m.input_dtype == engine::DType::Float32 && !m.input.empty()) {
    // no data: the class count from the declared output, else from one row of zeros (an output
    // that is not [N, C] class scores is refused, naming the output, as every command does)
    engine::Shape probe = m.input;
    for (auto& v : probe) v = v < 0 ? 1 : v;
    m.classes = model_classes("init", *session, engine::Tensor::full(probe, 0.0f));
  }

  // ---- input kind: from the data's rows when given, else from the declared input shape
  const size_t rank = d.present ? d.row_shape.size() + 1 : m.input.size();
  if (m.input_dtype != engine::DType::Float32) m.kind = InputKind::Other;
  else if (rank == 4 || rank == 3) m.kind = InputKind::Image;
  else if (rank == 2) m.kind = InputKind::Tabular;
  if (d.csv) m.kind = InputKind::Tabular;
  if (m.kind == InputKind::Other && d.present && !d.csv)
    throw init_error(fmt::format("--data {}: rows of shape {} are neither images [N,C,H,W] nor feature rows [N,F]; write the "
                                 "config by hand (docs/audit.md)",
                                 data, engine::shape_str(d.row_shape)));

  std::vector<std::string> sections;
  std::vector<Gate> gates;
  const std::string text = write_config(m, d, t, o, global, sections, gates);
  datasets::write_file_atomic(o.out.string(), text);

  // The file must pass the audit's own dry run as written; a refusal here is a bug in init.
  {
    GlobalOptions g = global;
    g.quiet = true;
    try {
      run_command("audit", {"--config", o.out.string(), "--check", "--quiet"}, g);
    } catch (const InputError& e) {
      throw Error("init", fmt::format("the config written to {} fails 'mlaudit audit --check' ({}); please report this",
                                      o.out.string(), e.what()));
    }
  }
  if (!global.quiet) {
    std::cout << fmt::format("init: wrote {} for {} ({}, {} classes): sections {}; {} gates; checked with 'mlaudit audit --check'\n",
                             o.out.string(), model_path,
                             m.kind == InputKind::Image ? "image input" : m.kind == InputKind::Tabular ? "tabular input" : "input",
                             m.classes, fmt::join(sections, ", "), gates.size());
    std::cout << fmt::format("next: read the comments in {0}, then\n  mlaudit audit --config {0} --out audit-report\n", o.out.string());
  }
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("init", "write a commented starter audit.yaml for a model (sections and gates chosen from it and its data)",
                cmd_init);
}  // namespace mlaudit::cli
