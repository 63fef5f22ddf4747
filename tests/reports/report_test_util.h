#pragma once
// Helpers for the reports tests: fixture paths, a fake command runner that
// "runs" sections by copying hand-written section JSONs, a tiny XML parser.
#include <sys/wait.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlaudit/datasets/io.h"
#include "mlaudit/common/error.h"
#include "mlaudit/reports/config.h"
#include "test_util.h"

namespace mlaudit::test {

/// Parses an audit config from text without touching the file system (check_files = false).
inline reports::AuditConfig parse_config_text(const std::string& text) {
  return reports::parse_config(text, "audit.yaml", "/cfg", false);
}

/// The InputError message parse_config_text gives, or "no error".
inline std::string config_error_of(const std::string& text) {
  try {
    parse_config_text(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

inline std::string fixture(const std::string& name) { return source_path("tests/fixtures/reports/" + name); }

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

/// Value following `flag` in an argument vector ("" when absent).
inline std::string arg_value(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag) return args[i + 1];
  return {};
}

/// Fake command runner: writes the fixture JSON matching the command to the
/// path given by --out (or --json for explain). Records every call. info, evaluate and
/// profile run the real mlaudit (tests using it are CLI tests: the binary is built first).
struct FakeRunner {
  std::vector<std::pair<std::string, std::vector<std::string>>> calls;
  std::map<std::string, int> exit_codes;  // command -> exit code to return (default 0)
  /// The calls that ran sections (every call but the models' `info` summaries).
  std::vector<std::pair<std::string, std::vector<std::string>>> section_calls() const {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    for (const auto& c : calls)
      if (c.first != "info") out.push_back(c);
    return out;
  }
  int operator()(const std::string& cmd, const std::vector<std::string>& args) {
    calls.emplace_back(cmd, args);
    int code = exit_codes.count(cmd) ? exit_codes[cmd] : 0;
    if (code >= 2) return code;  // failing commands write nothing
    // The model summary (info), performance (evaluate) and efficiency (profile) are cheap and
    // have no fixture: the real mlaudit runs them, so their figures are the model's own.
    if (cmd == "info" || cmd == "evaluate" || cmd == "profile") {
      std::string line = mlaudit_exe() + " -q " + cmd;
      for (const auto& a : args) line += " '" + a + "'";  // test paths hold no quote
      const int status = std::system((line + " > /dev/null 2>&1").c_str());
      return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
    }
    std::string src, out = arg_value(args, "--out");
    if (cmd == "attack") src = "attack_" + arg_value(args, "--attack") + ".json";
    else if (cmd == "certify") src = "certify.json";
    else if (cmd == "corrupt") src = "corrupt.json";
    else if (cmd == "fairness") src = "fairness.json";
    else if (cmd == "verify") src = "verify.json";
    else if (cmd == "explain") src = "explain_ig.json";
    else if (cmd == "privacy") src = "privacy.json";
    else if (cmd == "backdoor") src = "backdoor.json";
    std::string text = read_text(fixture(src));
    if (cmd == "backdoor") {
      // the fixture names its trigger images TRIGGER_DIR/trigger_class_<k>.png
      std::string dir = arg_value(args, "--trigger-dir");
      std::filesystem::create_directories(dir);
      for (size_t p; (p = text.find("TRIGGER_DIR/")) != std::string::npos;) {
        std::string name = text.substr(p + 12, text.find('"', p) - p - 12);
        std::filesystem::copy_file(fixture("heatmap_0.png"), dir + "/" + name, std::filesystem::copy_options::overwrite_existing);
        text.replace(p, 11, dir);
      }
    }
    if (cmd == "explain") {
      std::string dir = arg_value(args, "--heatmap-dir");
      std::filesystem::create_directories(dir);
      std::filesystem::copy_file(fixture("heatmap_0.png"), dir + "/heatmap_0.png",
                                 std::filesystem::copy_options::overwrite_existing);
      for (size_t p; (p = text.find("HEATMAP_DIR")) != std::string::npos;) text.replace(p, 11, dir);
    }
    write_text(out, text);
    return code;
  }
};

/// A config covering every section kind on the bundled models; section
/// commands are answered by FakeRunner. `gates` is appended verbatim.
inline std::string full_config(const std::string& gates) {
  std::string root = source_path("");
  return "version: 1\n"
         "system:\n  name: Test system\n  intended_use: unit tests\n  limitations: [fixture data]\n"
         "seed: 7\n"
         "models:\n  cnn: " + root + "models/fmnist_cnn.onnx\n  credit:\n    path: " + root + "models/credit_mlp.onnx\n"
         "datasets:\n"
         "  fmnist:\n    data: " + root + "datasets/demo/fmnist_x.npy\n    labels: " + root + "datasets/demo/fmnist_y.npy\n    domain: [0, 1]\n"
         "  credit:\n    csv: " + root + "datasets/credit/credit_test.csv\n    label: approved\n    protected: [sex]\n"
         "    features: " + root + "datasets/credit/features.txt\n"
         "sections:\n"
         "  performance:\n    - {model: credit, data: credit, bootstrap: 200}\n"
         "  robustness:\n    - model: cnn\n      data: fmnist\n      attacks: [fgsm, apgd-ce]\n      eps: [0.01, 0.03]\n      limit: 20\n"
         "  certification:\n    - {model: cnn, data: fmnist, sigma: 0.25, n: 1000, limit: 3}\n"
         "  corruption:\n    - {model: cnn, data: fmnist, corruptions: [gaussian_noise, contrast], severities: [1, 3], limit: 20}\n"
         "  fairness:\n    - {model: credit, data: credit, counterfactual: true, bootstrap: 100}\n"
         "  explanations:\n    - {model: cnn, data: fmnist, method: integrated-gradients, limit: 2}\n"
         "  verification:\n    - {model: cnn, data: fmnist, eps: [0.01], limit: 4, timeout: 5}\n"
         "gates:\n" + gates;
}

/// Gates that all pass on the fixtures.
inline const char* kPassingGates =
    "  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.5\n"
    "  - check: demographic_parity_ratio(sex) >= 0.7\n    name: four-fifths on sex\n"
    "  - verified_fraction(linf, 0.01) >= 0.5\n"
    "  - ig_completeness_gap <= 0.05\n"
    "  - certified_accuracy(0.25) > 0.5\n"
    "  - mean_corruption_accuracy >= 0.7\n"
    "  - check: accuracy() >= 0.5\n    model: credit\n";

/// Minimal XML element tree (enough to check JUnit and SVG structure).
struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::vector<std::unique_ptr<XmlNode>> children;
  std::string text;
  const XmlNode* child(const std::string& n) const {
    for (const auto& c : children)
      if (c->name == n) return c.get();
    return nullptr;
  }
  std::vector<const XmlNode*> all(const std::string& n) const {
    std::vector<const XmlNode*> out;
    for (const auto& c : children)
      if (c->name == n) out.push_back(c.get());
    return out;
  }
};

/// Parse well-formed XML (elements, attributes in quotes, the five entities,
/// numeric references); throws std::runtime_error on anything malformed.
inline std::unique_ptr<XmlNode> parse_xml(const std::string& s) {
  size_t i = 0;
  auto fail = [&](const std::string& m) { throw std::runtime_error("XML: " + m + " at offset " + std::to_string(i)); };
  auto decode = [&](const std::string& t) {
    std::string out;
    for (size_t k = 0; k < t.size(); ++k) {
      if (t[k] == '<') fail("raw '<' in text");
      if (t[k] != '&') {
        out += t[k];
        continue;
      }
      size_t e = t.find(';', k);
      if (e == std::string::npos) fail("unterminated entity");
      std::string ent = t.substr(k + 1, e - k - 1);
      if (ent == "amp") out += '&';
      else if (ent == "lt") out += '<';
      else if (ent == "gt") out += '>';
      else if (ent == "quot") out += '"';
      else if (ent == "apos") out += '\'';
      else if (!ent.empty() && ent[0] == '#') out += '?';
      else fail("unknown entity &" + ent + ";");
      k = e;
    }
    return out;
  };
  auto skip_ws = [&]() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  if (s.compare(0, 5, "<?xml") == 0) i = s.find("?>") + 2;
  std::vector<XmlNode*> stack;
  std::unique_ptr<XmlNode> root;
  while (true) {
    size_t lt = s.find('<', i);
    std::string text = s.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
    if (!stack.empty()) stack.back()->text += decode(text);
    else {
      for (char c : text)
        if (!std::isspace(static_cast<unsigned char>(c))) fail("text outside the root element");
    }
    if (lt == std::string::npos) break;
    i = lt + 1;
    if (s.compare(i, 3, "!--") == 0) {
      i = s.find("-->", i);
      if (i == std::string::npos) fail("unterminated comment");
      i += 3;
      continue;
    }
    if (s[i] == '/') {
      size_t gt = s.find('>', i);
      std::string name = s.substr(i + 1, gt - i - 1);
      if (stack.empty() || stack.back()->name != name) fail("mismatched </" + name + ">");
      stack.pop_back();
      i = gt + 1;
      continue;
    }
    auto node = std::make_unique<XmlNode>();
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != '>' && s[i] != '/') node->name += s[i++];
    if (node->name.empty()) fail("empty element name");
    bool self_close = false;
    while (true) {
      skip_ws();
      if (i >= s.size()) fail("unterminated tag");
      if (s[i] == '/') {
        if (s[i + 1] != '>') fail("bad '/'");
        self_close = true;
        i += 2;
        break;
      }
      if (s[i] == '>') {
        ++i;
        break;
      }
      std::string key;
      while (i < s.size() && s[i] != '=' && !std::isspace(static_cast<unsigned char>(s[i]))) key += s[i++];
      skip_ws();
      if (s[i] != '=') fail("attribute without value: " + key);
      ++i;
      skip_ws();
      char q = s[i];
      if (q != '"' && q != '\'') fail("unquoted attribute " + key);
      size_t end = s.find(q, i + 1);
      if (node->attrs.count(key)) fail("duplicate attribute " + key);
      node->attrs[key] = decode(s.substr(i + 1, end - i - 1));
      i = end + 1;
    }
    XmlNode* raw = node.get();
    if (stack.empty()) {
      if (root) fail("two root elements");
      root = std::move(node);
    } else {
      stack.back()->children.push_back(std::move(node));
    }
    if (!self_close) stack.push_back(raw);
  }
  if (!stack.empty()) fail("unclosed <" + stack.back()->name + ">");
  if (!root) fail("no root element");
  return root;
}

}  // namespace mlaudit::test
