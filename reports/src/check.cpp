// The audit's dry run (check.h): everything a section's command would refuse,
// found before the first section runs, with the YAML position of the value.
#include "mlaudit/reports/check.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/common/error.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/report.h"
#include "mlaudit/reports/sections.h"
#include "sections/context.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mlaudit::reports {

namespace {

[[noreturn]] void fail_at(const AuditConfig& cfg, const SourceMark& m, const std::string& msg) {
  throw InputError("audit", fmt::format("{}: {}", cfg.where(m), msg));
}

// " (did you mean 'x'?)" for a near miss, else " (expected one of: a, b, c)".
std::string suggest(const std::string& value, const std::vector<std::string>& options) {
  return datasets::did_you_mean(value, options);
}

bool contains(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// A model as the sections' commands load it (by the CLI's probe), with its class count.
ModelShape load_model(const ModelSpec& m, const AuditConfig& cfg, const ModelProbe& probe) {
  try {
    return probe(m);
  } catch (const InputError& e) {
    fail_at(cfg, m.mark, fmt::format("model '{}': {}", m.id, e.what()));
  }
}

// The .npy inputs of a data set as the sections see them: shape from the header,
// labels read in full (they are small) and counted against the rows.
struct NpyData {
  std::vector<int64_t> shape;
  std::vector<int64_t> labels;
};

NpyData read_npy_set(const DatasetSpec& d, const AuditConfig& cfg) {
  NpyData out;
  auto mark = [&](const char* key) { return d.marks.count(key) ? d.marks.at(key) : d.mark; };
  try {
    out.shape = npy_shape(d.data);
  } catch (const InputError& e) {
    fail_at(cfg, mark("data"), fmt::format("data set '{}': {}", d.id, e.what()));
  }
  if (out.shape.empty()) fail_at(cfg, mark("data"), fmt::format("data set '{}': '{}' holds a scalar, not rows of inputs", d.id, d.data));
  if (d.labels.empty()) return out;  // a background set: no labels (sections' data sets have them)
  try {
    out.labels = datasets::read_npy_labels(d.labels).to_int64s();
  } catch (const InputError& e) {
    fail_at(cfg, mark("labels"), fmt::format("data set '{}': {}", d.id, e.what()));
  }
  if (int64_t(out.labels.size()) != out.shape[0])
    fail_at(cfg, mark("labels"), fmt::format("data set '{}': {} labels for {} inputs ('{}' is {})", d.id, out.labels.size(),
                                             out.shape[0], d.data, engine::shape_str(out.shape)));
  return out;
}

// Columns named by a CSV data set (label, features, protected) must be in its header.
void check_csv_header(const DatasetSpec& d, const AuditConfig& cfg) {
  std::ifstream in(d.csv, std::ios::binary);
  std::string first;
  std::getline(in, first);
  auto mark = [&](const char* key) { return d.marks.count(key) ? d.marks.at(key) : d.mark; };
  std::vector<std::string> columns;
  try {
    columns = datasets::parse_csv(first + "\n", d.csv).columns;
  } catch (const InputError& e) {
    fail_at(cfg, mark("csv"), fmt::format("data set '{}': {}", d.id, e.what()));
  }
  auto need = [&](const std::string& column, const char* key) {
    if (!contains(columns, column))
      fail_at(cfg, mark(key), fmt::format("data set '{}': column '{}' is not in the header of '{}'{}", d.id, column, d.csv,
                                          suggest(column, columns)));
  };
  need(d.label, "label");
  for (const auto& f : d.features) need(f, "features");
  for (const auto& p : d.protected_attributes) need(p, "protected");
}

// "the first N rows" of a section, as section_command passes them.
std::vector<int64_t> first_rows(const std::vector<int64_t>& y, const SectionSpec& s) {
  int64_t n = s.params.value("limit", int64_t(0));
  if (n <= 0 || n >= int64_t(y.size())) return y;
  return {y.begin(), y.begin() + n};
}

void check_writable_out(const std::string& out) {
  fs::path p = fs::absolute(out);
  std::error_code ec;
  if (fs::exists(p, ec)) {
    if (!fs::is_directory(p, ec)) throw InputError("audit", fmt::format("--out: '{}' exists and is not a folder", out));
    if (access(p.c_str(), W_OK) != 0) throw InputError("audit", fmt::format("--out: folder '{}' is not writable", out));
    return;
  }
  // the first existing ancestor is where run_audit creates the folder
  fs::path parent = p.parent_path();
  while (!parent.empty() && !fs::exists(parent, ec)) parent = parent.parent_path();
  if (parent.empty() || !fs::is_directory(parent, ec) || access(parent.c_str(), W_OK) != 0)
    throw InputError("audit", fmt::format("--out: cannot create folder '{}': '{}' is not a writable folder", out, parent.string()));
}

void check_diff(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || access(path.c_str(), R_OK) != 0)
    throw InputError("audit", fmt::format("--diff: file '{}' not found or not readable", path));
  json previous;
  try {
    const std::string text = datasets::read_file(path, 256 << 20);
    datasets::require_utf8(text, path, "audit");
    previous = json::parse(text);
  } catch (const json::exception& e) {
    throw InputError("audit", fmt::format("--diff: '{}' is not valid JSON: {}", path, e.what()));
  }
  if (!previous.is_object() || previous.value("schema", "") != kReportSchema)
    throw InputError("audit", fmt::format("--diff: '{}' is not an mlaudit report (schema '{}')", path, kReportSchema));
}

}  // namespace

void SectionCheck::fail(const SourceMark& m, const std::string& msg) const { fail_at(cfg, m, msg); }
std::string SectionCheck::suggest(const std::string& value, const std::vector<std::string>& options) const {
  return datasets::did_you_mean(value, options);
}

std::vector<int64_t> npy_shape(const std::string& path) {
  // NumPy format 1.0-3.0: "\x93NUMPY", major, minor, header length (uint16 LE in
  // 1.0, uint32 LE in 2.0/3.0), then a Python dict literal with 'shape': (a, b, ...).
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("datasets", fmt::format("{}: cannot open the file", path));
  char pre[12] = {};
  in.read(pre, 10);
  if (in.gcount() < 10 || std::memcmp(pre, "\x93NUMPY", 6) != 0)
    throw InputError("datasets", fmt::format("{}: not an .npy file (bad magic)", path));
  const int major = static_cast<unsigned char>(pre[6]);
  uint32_t length = static_cast<unsigned char>(pre[8]) | (static_cast<unsigned char>(pre[9]) << 8);
  if (major >= 2) {
    in.read(pre + 10, 2);
    length |= (uint32_t(static_cast<unsigned char>(pre[10])) << 16) | (uint32_t(static_cast<unsigned char>(pre[11])) << 24);
  } else if (major != 1) {
    throw InputError("datasets", fmt::format("{}: unsupported .npy version {}", path, major));
  }
  if (length > (1u << 20)) throw InputError("datasets", fmt::format("{}: .npy header of {} bytes is implausible", path, length));
  std::string header(length, '\0');
  in.read(header.data(), length);
  if (uint32_t(in.gcount()) != length) throw InputError("datasets", fmt::format("{}: truncated .npy header", path));
  size_t key = header.find("'shape'");
  size_t open = key == std::string::npos ? key : header.find('(', key);
  size_t close = open == std::string::npos ? open : header.find(')', open);
  if (close == std::string::npos) throw InputError("datasets", fmt::format("{}: .npy header has no shape", path));
  std::vector<int64_t> shape;
  std::string inner = header.substr(open + 1, close - open - 1);
  size_t i = 0;
  while (i < inner.size()) {
    while (i < inner.size() && (inner[i] == ' ' || inner[i] == ',')) ++i;
    if (i >= inner.size()) break;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(inner.substr(i), &used);
    } catch (...) {
      used = 0;
    }
    if (used == 0 || v < 0) throw InputError("datasets", fmt::format("{}: bad .npy shape '({})'", path, inner));
    shape.push_back(v);
    i += used;
    while (i < inner.size() && inner[i] == 'L') ++i;  // Python 2 longs
  }
  return shape;
}

ImportedResult read_import(const SectionSpec& s, const AuditConfig& cfg) {
  ImportedResult out;
  const std::string path = s.params.value("result", "");
  const SourceMark at = s.mark_of("result");
  const bool allow_foreign = s.params.value("allow_foreign_model", false);
  auto fail = [&](const std::string& msg) { fail_at(cfg, at, fmt::format("section '{}': result '{}': {}", s.id, path, msg)); };
  std::string text;
  try {
    text = datasets::read_file(path, 512 << 20);
    datasets::require_utf8(text, path, "audit");
    out.result = json::parse(text);
  } catch (const json::exception& e) {
    fail(fmt::format("not valid JSON: {}", e.what()));
  } catch (const InputError& e) {
    fail(e.what());
  }
  if (!out.result.is_object()) fail("not a JSON object");
  // the kind: "mlaudit.<command>/<version>" must be this section kind's result, version 1
  const std::string expected = result_schema_name(s.kind);
  const std::string schema = out.result.value("schema", "");
  const size_t slash = schema.rfind('/');
  const std::string name = slash == std::string::npos ? schema : schema.substr(0, slash);
  const std::string version = slash == std::string::npos ? "" : schema.substr(slash + 1);
  if (schema.empty()) fail(fmt::format("has no \"schema\"; a {} section imports a {}/1 result", section_kind_name(s.kind), expected));
  if (name != expected)
    fail(fmt::format("is a '{}' result, but a {} section imports {}/1", schema, section_kind_name(s.kind), expected));
  if (version != "1") fail(fmt::format("schema version '{}' is not one this mlaudit reads ({}/1)", schema, expected));
  // the same run the section describes
  for (const char* key : {"attack", "norm", "method"}) {
    if (!s.params.contains(key) || !out.result.contains(key) || !out.result[key].is_string()) continue;
    if (out.result[key] != s.params[key])
      fail(fmt::format("was made with {} '{}', but the section asks for {} '{}'", key, out.result[key].get<std::string>(), key,
                       s.params[key].get<std::string>()));
  }
  // provenance: the model the result was computed from
  const ModelSpec* model = cfg.model(s.model);
  const std::string model_sha = datasets::sha256_file(model->path);
  const json& inputs = out.result.contains("inputs") ? out.result["inputs"] : json();
  json result_sha = nullptr;
  if (inputs.is_object() && inputs.contains("model") && inputs["model"].is_object() && inputs["model"].contains("sha256") &&
      inputs["model"]["sha256"].is_string())
    result_sha = inputs["model"]["sha256"];
  std::string check = "match";
  if (result_sha.is_null()) {
    check = "unverified";
    if (!allow_foreign)
      fail(fmt::format("has no \"inputs\" block with the model's SHA-256 (written before results recorded their inputs), so "
                       "it cannot be tied to model '{}'; re-run the section, or set 'allow_foreign_model: true' to import it "
                       "unverified (the report says so)",
                       s.model));
  } else if (result_sha.get<std::string>() != model_sha) {
    check = "foreign";
    if (!allow_foreign)
      fail(fmt::format("was computed from a different model: its inputs.model.sha256 is {} ({}), model '{}' ({}) has {}; "
                       "re-run the section, or set 'allow_foreign_model: true' to import it anyway (the report says so)",
                       result_sha.get<std::string>(), inputs["model"].value("path", "path not recorded"), s.model, model->path,
                       model_sha));
  }
  out.provenance = {{"path", path},
                    {"sha256", datasets::sha256_file(path)},
                    {"schema", schema},
                    {"model_check", check},
                    {"model_sha256", model_sha},
                    {"result_model_sha256", result_sha},
                    {"allow_foreign_model", allow_foreign}};
  return out;
}

CheckSummary check_audit(const AuditConfig& cfg, const SectionVocabulary& vocab, const CheckOptions& options) {
  CheckSummary summary;
  if (!options.out_dir.empty()) check_writable_out(options.out_dir);
  if (!options.diff_path.empty()) check_diff(options.diff_path);

  // Models the sections use, loaded as their commands load them.
  std::map<std::string, ModelShape> models;
  for (const auto& s : cfg.sections)
    if (!models.count(s.model))
      models.emplace(s.model, options.probe_model ? load_model(*cfg.model(s.model), cfg, options.probe_model) : ModelShape{});
  if (options.probe_model) summary.models_loaded = int(models.size());

  // Data sets: .npy headers and labels, CSV headers.
  std::map<std::string, NpyData> npy;
  for (const auto& d : cfg.datasets) {
    if (d.is_csv()) check_csv_header(d, cfg);
    else npy.emplace(d.id, read_npy_set(d, cfg));
    ++summary.data_sets_read;
  }

  for (const auto& s : cfg.sections) {
    const ModelShape& model = models.at(s.model);
    const DatasetSpec* ds = s.data.empty() ? nullptr : cfg.dataset(s.data);
    const NpyData* data = ds && npy.count(ds->id) ? &npy.at(ds->id) : nullptr;
    const SectionKindDef& kind = section_kind_def(s.kind);
    // inputs fit the model: per-sample shape (static dims) and labels in [0, C)
    auto check_set = [&](const DatasetSpec& set, const NpyData& set_data, const SourceMark& where) {
      if (!model.input.empty()) {
        const std::vector<int64_t> row(set_data.shape.begin() + 1, set_data.shape.end());
        bool fits = row.size() == model.input.size();
        for (size_t k = 0; fits && k < row.size(); ++k) fits = model.input[k] < 0 || model.input[k] == row[k];
        if (!fits)
          fail_at(cfg, where, fmt::format("data set '{}' has inputs {} but model '{}' takes [N{}{}]", set.id,
                                          engine::shape_str(set_data.shape), s.model, model.input.empty() ? "" : ",",
                                          [&] {
                                            std::string t;
                                            for (auto v : model.input) t += (t.empty() ? "" : ",") + (v < 0 ? std::string("?") : std::to_string(v));
                                            return t;
                                          }()));
      }
      // the sections whose commands read the labels as class indices of the model
      const bool reads_labels = kind.reads_labels;
      if (model.classes > 0 && reads_labels)
        datasets::check_labels(fmt::format("audit: {}: section '{}': data set '{}' (labels {})", cfg.where(where), s.id,
                                           set.id, set.labels),
                               first_rows(set_data.labels, s), model.classes);
    };
    if (ds && data && !s.params.contains("result")) check_set(*ds, *data, s.mark_of("data"));
    // attack and verify bound their search by the data set's domain ([0, 1] when none is given)
    // and refuse inputs outside it: read the rows the section uses (data sets up to 512 MiB).
    const bool bounded = kind.searches_domain && kind.searches_domain(s);
    std::error_code size_error;
    if (bounded && ds && data && !s.params.contains("result") &&
        fs::file_size(ds->data, size_error) <= (uint64_t(512) << 20) && !size_error) {
      engine::Tensor x = datasets::read_npy_float(ds->data);
      const int64_t rows = int64_t(first_rows(data->labels, s).size());
      if (rows < x.dim(0)) x = x.slice_rows(0, rows);
      double lo = ds->domain ? ds->domain->first : 0.0, hi = ds->domain ? ds->domain->second : 1.0;
      // flags passed verbatim through `args` come last on the command line, so they win
      const json args = s.params.value("args", json::array());
      for (size_t k = 0; k < args.size(); ++k) {
        const std::string a = args[k].is_string() ? args[k].get<std::string>() : "";
        for (auto [flag, bound] : {std::pair{std::string("--clip-min"), &lo}, std::pair{std::string("--clip-max"), &hi}}) {
          std::string value;
          if (a == flag && k + 1 < args.size() && args[k + 1].is_string()) value = args[k + 1].get<std::string>();
          else if (a.rfind(flag + "=", 0) == 0) value = a.substr(flag.size() + 1);
          if (value.empty()) continue;
          try {
            *bound = std::stod(value);
          } catch (...) {
          }
        }
      }
      datasets::check_in_domain(
          fmt::format("audit: {}: section '{}': data set '{}' ({})", cfg.where(s.mark_of("data")), s.id, ds->id, ds->data), x, lo,
          hi,
          ds->domain ? "widen the data set's 'domain: [min, max]'"
                     : "attack and verify search [0, 1] unless the data set gives 'domain: [min, max]' (.inf for an open side)");
    }
    if (!s.params.contains("result"))
      for (const std::string& key : kind.data_keys) {
        const DatasetSpec* set = cfg.dataset(s.params[key].get<std::string>());
        if (set && npy.count(set->id)) check_set(*set, npy.at(set->id), s.mark_of(key));
      }
    // the kind's own checks against the modules' tables (sections/<kind>.cpp)
    if (kind.check) {
      SectionCheck c(cfg, s, vocab);
      c.shape = data ? &data->shape : nullptr;
      kind.check(c);
    }
    if (s.params.contains("result")) {
      read_import(s, cfg);
      ++summary.imports_verified;
    }
  }

  // Every gate needs a configured section that will produce its metric.
  for (const auto& g : cfg.gates) {
    if (g.metric == "corruption_accuracy" && !g.args.empty() && !vocab.image_corruptions.empty() &&
        !contains(vocab.image_corruptions, g.args[0]) && !contains(vocab.tabular_corruptions, g.args[0])) {
      std::vector<std::string> all = vocab.image_corruptions;
      all.insert(all.end(), vocab.tabular_corruptions.begin(), vocab.tabular_corruptions.end());
      fail_at(cfg, g.mark, fmt::format("gate '{}': mlaudit corrupt has no corruption '{}'{}", g.check, g.args[0], suggest(g.args[0], all)));
    }
    std::string why = gate_without_producer(g, cfg);
    if (!why.empty()) fail_at(cfg, g.mark, fmt::format("gate '{}': no configured section will produce {}({}): {}", g.check, g.metric,
                                                       [&] {
                                                         std::string a;
                                                         for (const auto& x : g.args) a += (a.empty() ? "" : ", ") + x;
                                                         return a;
                                                       }(),
                                                       why));
  }
  return summary;
}

}  // namespace mlaudit::reports
