#pragma once
// The models and data sets every section kind's registered example (SectionKindDef::example)
// runs on, and helpers to write one entry per kind with a key changed.
#include <map>
#include <vector>
#include <string>

#include <nlohmann/json.hpp>

#include "mlaudit/reports/sections.h"
#include "test_util.h"

namespace mlaudit::test {

/// models m (the bundled Fashion-MNIST CNN) and tab (the credit MLP); data sets images,
/// held_out (.npy images), extra (the credit rows as .npy), table (the credit CSV with its features and 'sex').
inline std::string section_harness(const std::string& sections) {
  const std::string r = source_path("");
  return "seed: 0\n"
         "models:\n"
         "  m: " + r + "models/fmnist_cnn.onnx\n"
         "  tab: " + r + "models/credit_mlp.onnx\n"
         "datasets:\n"
         "  images: {data: " + r + "datasets/demo/fmnist_x.npy, labels: " + r + "datasets/demo/fmnist_y.npy, domain: [0, 1]}\n"
         "  held_out: {data: " + r + "datasets/demo/fmnist_train_x.npy, labels: " + r + "datasets/demo/fmnist_train_y.npy, domain: [0, 1]}\n"
         "  extra: {data: " + r + "datasets/demo/credit_x.npy, labels: " + r + "datasets/demo/credit_y.npy}\n"
         "  table: {csv: " + r + "datasets/credit/credit_test.csv, label: approved, protected: [sex], features: " + r +
         "datasets/credit/features.txt}\n"
         "sections:\n" + sections;
}

/// `entry` (block YAML, one key per line) with `key` set to `value` (a JSON value, which YAML reads as flow).
inline std::string with_key(const std::string& entry, const std::string& key, const nlohmann::json& value) {
  std::string out;
  size_t at = 0;
  while (at < entry.size()) {
    size_t end = entry.find('\n', at);
    std::string line = entry.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (line.rfind(key + ":", 0) != 0) out += line + "\n";
    at = end == std::string::npos ? entry.size() : end + 1;
  }
  return out + key + ": " + value.dump() + "\n";
}

/// `kind: <entry>` under 'sections:' (the entry's lines indented).
inline std::string section_yaml(const std::string& kind, const std::string& entry) {
  std::string out = "  " + kind + ":\n";
  size_t at = 0;
  while (at < entry.size()) {
    size_t end = entry.find('\n', at);
    out += "    " + entry.substr(at, end == std::string::npos ? std::string::npos : end - at) + "\n";
    at = end == std::string::npos ? entry.size() : end + 1;
  }
  return out;
}

}  // namespace mlaudit::test

namespace mlaudit::test {

/// Values of `key` that its type, rule or allowed values refuse (each refused when the config is parsed).
inline std::vector<nlohmann::json> refused_values(const reports::SectionKey& key) {
  using reports::KeyRule;
  using reports::KeyType;
  std::vector<nlohmann::json> out;
  const nlohmann::json mapping = {{"a", 1}};  // never a scalar nor a list
  switch (key.type) {
    case KeyType::Int: out.push_back("x"); break;
    case KeyType::Num: out.push_back("x"); break;
    case KeyType::Bool: out.push_back("maybe"); break;
    case KeyType::Str: out.push_back(mapping); break;
    case KeyType::StrList:
    case KeyType::NumList:
    case KeyType::IntList: out.push_back(mapping); break;
    case KeyType::Path: out.push_back("/nonexistent/mlaudit-no-such-file"); break;
  }
  if (key.rule == KeyRule::Positive) out.push_back(0);
  if (key.rule == KeyRule::OpenUnit) out.push_back(1.5);
  if (key.rule == KeyRule::NonNegative) out.push_back(nlohmann::json::array({-1}));
  if (!key.choices.empty())
    out.push_back(key.type == KeyType::StrList ? nlohmann::json::array({"bogus"}) : nlohmann::json("bogus"));
  return out;
}

}  // namespace mlaudit::test
