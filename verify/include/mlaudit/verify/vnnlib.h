#pragma once
// VNN-LIB properties (the VNN-COMP subset of SMT-LIB): declare-const X_i / Y_j
// Real, asserts built from <=, >=, <, >, = over linear terms, and/or nesting.
// A property describes the UNSAFE set: `sat` means some input in the input
// region reaches it (a counterexample), `unsat` means the network is safe.
#include <cstdint>
#include <string>
#include <vector>

namespace mlaudit::verify {

/// Linear constraint over the outputs: coef . Y + constant <= 0.
struct OutputConstraint {
  std::vector<double> coef;
  double constant = 0;
};

/// A conjunction of output constraints (one disjunct of the unsafe region).
using OutputConjunction = std::vector<OutputConstraint>;

/// Axis-aligned input box.
struct InputBox {
  std::vector<double> lower;
  std::vector<double> upper;
};

/// One input box with the unsafe output region (a disjunction of conjunctions) for it.
struct SubProperty {
  InputBox box;
  std::vector<OutputConjunction> unsafe;
};

/// A parsed property: the unsafe set is the union over `cases` of box x unsafe-outputs.
struct Property {
  std::string source;
  int64_t num_inputs = 0;
  int64_t num_outputs = 0;
  std::vector<SubProperty> cases;
};

/// Parse VNN-LIB text. Errors throw InputError "verify: <source>:<line>:<col>: <message>".
Property parse_vnnlib(const std::string& text, const std::string& source);
/// Read and parse a .vnnlib file.
Property read_vnnlib(const std::string& path);

/// Local-robustness property: box [x-eps, x+eps] clipped to [clip_min, clip_max],
/// unsafe when any class j != label has y_j >= y_label.
Property robustness_property(const std::vector<double>& x, int64_t label, int64_t num_outputs, double eps,
                             double clip_min, double clip_max);

}  // namespace mlaudit::verify
