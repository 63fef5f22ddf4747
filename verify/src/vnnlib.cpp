// VNN-LIB parser: S-expressions -> disjunctive normal form -> input boxes with
// output constraints. Format: https://www.vnnlib.org (VNN-COMP 2021-2023 subset).
#include "mlaudit/verify/vnnlib.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>

#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::verify {
namespace {

struct SExpr {
  bool is_atom = false;
  std::string atom;
  std::vector<SExpr> items;
  int line = 0, col = 0;
};

class Reader {
 public:
  Reader(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  [[noreturn]] void fail(int line, int col, const std::string& msg) const {
    throw InputError("verify", fmt::format("{}:{}:{}: {}", source_, line, col, msg));
  }

  void skip() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == ';') {
        while (i_ < s_.size() && s_[i_] != '\n') advance();
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        advance();
      } else {
        break;
      }
    }
  }
  bool at_end() {
    skip();
    return i_ >= s_.size();
  }
  // Nesting depth limit: reading, the formula builder and the tree's destructor all recurse, so
  // a few kilobytes of '(' must end in an error, not a stack overflow. Real properties nest a
  // handful of levels.
  static constexpr int kMaxDepth = 256;

  SExpr read(int depth = 0) {
    skip();
    if (i_ >= s_.size()) fail(line_, col_, "unexpected end of file (missing ')')");
    if (depth > kMaxDepth) fail(line_, col_, fmt::format("expressions nested deeper than {} levels", kMaxDepth));
    SExpr e;
    e.line = line_;
    e.col = col_;
    if (s_[i_] == ')') fail(line_, col_, "unexpected ')'");
    if (s_[i_] == '(') {
      advance();
      for (;;) {
        skip();
        if (i_ >= s_.size()) fail(e.line, e.col, "unbalanced '(' (no matching ')')");
        if (s_[i_] == ')') {
          advance();
          break;
        }
        e.items.push_back(read(depth + 1));
      }
      return e;
    }
    e.is_atom = true;
    while (i_ < s_.size() && s_[i_] != '(' && s_[i_] != ')' && s_[i_] != ';' &&
           !std::isspace(static_cast<unsigned char>(s_[i_]))) {
      e.atom += s_[i_];
      advance();
    }
    return e;
  }

 private:
  void advance() {
    if (s_[i_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++i_;
  }
  const std::string& s_;
  std::string source_;
  size_t i_ = 0;
  int line_ = 1, col_ = 1;
};

// Linear expression over variables: index 0..nx-1 are X, nx.. are Y.
struct Linear {
  std::map<int64_t, double> coef;
  double constant = 0;
};

// An atom: linear <= 0.
using Atom = Linear;
using Dnf = std::vector<std::vector<Atom>>;

constexpr size_t kMaxDisjuncts = 200000;
// Comparisons in the multiplied-out (disjunctive) form, and output-constraint coefficients in
// the parsed property: a few kilobytes of nested (or ...) must not become gigabytes.
constexpr size_t kMaxAtoms = 1000000;
// Coefficients of the parsed cases' output constraints, counting ny + 4 per constraint for its
// vector (64 MB of doubles).
constexpr size_t kMaxCoefficients = size_t(1) << 23;

class Builder {
 public:
  Builder(const Reader& r, const std::string& source) : r_(r), source_(source) {}

  void declare(const SExpr& e) {
    if (e.items.size() != 3 || !e.items[1].is_atom || !e.items[2].is_atom)
      r_.fail(e.line, e.col, "declare-const needs a name and a sort");
    const std::string& name = e.items[1].atom;
    if (e.items[2].atom != "Real") r_.fail(e.items[2].line, e.items[2].col, "sort '" + e.items[2].atom + "' is not Real");
    char kind = name.empty() ? '?' : name[0];
    if ((kind != 'X' && kind != 'Y') || name.size() < 3 || name[1] != '_')
      r_.fail(e.items[1].line, e.items[1].col, "variable '" + name + "' is not named X_i or Y_j");
    char* end = nullptr;
    long idx = std::strtol(name.c_str() + 2, &end, 10);
    if (*end != '\0' || idx < 0) r_.fail(e.items[1].line, e.items[1].col, "bad variable index in '" + name + "'");
    // Indices size the property's input and output vectors: far past any network's width is
    // a hostile or broken file (LONG_MAX overflowed idx + 1 below, found by fuzz/fuzz_vnnlib).
    constexpr long kMaxIndex = 1L << 24;
    if (idx >= kMaxIndex)
      r_.fail(e.items[1].line, e.items[1].col,
              fmt::format("variable index in '{}' is too large (at most {})", name.size() > 40 ? name.substr(0, 40) + "..." : name,
                          kMaxIndex - 1));
    if (vars_.count(name)) r_.fail(e.items[1].line, e.items[1].col, "variable '" + name + "' declared twice");
    vars_[name] = {kind, idx};
    if (kind == 'X') nx_ = std::max<int64_t>(nx_, idx + 1);
    else ny_ = std::max<int64_t>(ny_, idx + 1);
  }

  int64_t nx() const { return nx_; }
  int64_t ny() const { return ny_; }
  // Variable id: X_i -> i, Y_j -> nx + j (after all declarations).
  int64_t var_id(const std::string& name) const {
    auto it = vars_.find(name);
    if (it == vars_.end()) return -1;
    return it->second.first == 'X' ? it->second.second : nx_ + it->second.second;
  }

  Linear term(const SExpr& e) const {
    Linear l;
    if (e.is_atom) {
      int64_t id = var_id(e.atom);
      if (id >= 0) {
        l.coef[id] = 1;
        return l;
      }
      char* end = nullptr;
      double v = std::strtod(e.atom.c_str(), &end);
      if (e.atom.empty() || *end != '\0' || !std::isfinite(v)) {
        if (!e.atom.empty() && (e.atom[0] == 'X' || e.atom[0] == 'Y'))
          r_.fail(e.line, e.col, "undeclared variable '" + e.atom + "'");
        r_.fail(e.line, e.col, "expected a number or a variable, got '" + e.atom + "'");
      }
      l.constant = v;
      return l;
    }
    if (e.items.empty() || !e.items[0].is_atom) r_.fail(e.line, e.col, "expected a term");
    const std::string& op = e.items[0].atom;
    if (op == "+" || op == "-") {
      if (e.items.size() < 2) r_.fail(e.line, e.col, "'" + op + "' needs operands");
      Linear acc = term(e.items[1]);
      if (op == "-" && e.items.size() == 2) return scale(acc, -1);
      for (size_t i = 2; i < e.items.size(); ++i) add(acc, term(e.items[i]), op == "-" ? -1 : 1);
      return acc;
    }
    if (op == "*") {
      Linear acc;
      acc.constant = 1;
      for (size_t i = 1; i < e.items.size(); ++i) {
        Linear t = term(e.items[i]);
        if (!acc.coef.empty() && !t.coef.empty()) r_.fail(e.line, e.col, "product of two variables is not linear");
        if (t.coef.empty()) acc = scale(acc, t.constant);
        else acc = scale(t, acc.constant);
      }
      return acc;
    }
    r_.fail(e.items[0].line, e.items[0].col, "unsupported term operator '" + op + "'");
  }

  Dnf formula(const SExpr& e) const {
    if (e.is_atom || e.items.empty() || !e.items[0].is_atom)
      r_.fail(e.line, e.col, "expected a formula such as (<= X_0 1.0)");
    const std::string& op = e.items[0].atom;
    if (op == "and") {
      Dnf acc{{}};
      for (size_t i = 1; i < e.items.size(); ++i) acc = conjoin(acc, formula(e.items[i]), e);
      return acc;
    }
    if (op == "or") {
      Dnf acc;
      for (size_t i = 1; i < e.items.size(); ++i) {
        Dnf d = formula(e.items[i]);
        acc.insert(acc.end(), d.begin(), d.end());
        if (acc.size() > kMaxDisjuncts) r_.fail(e.line, e.col, "formula too large (more than 200000 disjuncts)");
      }
      return acc;
    }
    if (op == "<=" || op == ">=" || op == "<" || op == ">" || op == "=") {
      if (e.items.size() != 3) r_.fail(e.line, e.col, "'" + op + "' needs two operands");
      Linear a = term(e.items[1]), b = term(e.items[2]);
      // Strict and non-strict comparisons give the same closed set; a proof of
      // the closure is a proof of the strict property (sound over-approximation).
      Linear le = a;  // a - b <= 0
      add(le, b, -1);
      Linear ge = b;  // b - a <= 0
      add(ge, a, -1);
      if (op == "<=" || op == "<") return {{le}};
      if (op == ">=" || op == ">") return {{ge}};
      return {{le, ge}};
    }
    r_.fail(e.items[0].line, e.items[0].col, "unsupported operator '" + op + "'");
  }

  Dnf conjoin(const Dnf& a, const Dnf& b, const SExpr& where) const {
    Dnf out;
    if (a.size() * b.size() > kMaxDisjuncts) r_.fail(where.line, where.col, "formula too large (more than 200000 disjuncts)");
    // the atoms the product holds: each term of a paired with each term of b
    size_t atoms_a = 0, atoms_b = 0;
    for (const auto& x : a) atoms_a += x.size();
    for (const auto& y : b) atoms_b += y.size();
    if (atoms_a * b.size() + atoms_b * a.size() > kMaxAtoms)
      r_.fail(where.line, where.col, fmt::format("formula too large (its disjunctive form holds more than {} comparisons)", kMaxAtoms));
    out.reserve(a.size() * b.size());
    for (const auto& x : a)
      for (const auto& y : b) {
        std::vector<Atom> c = x;
        c.insert(c.end(), y.begin(), y.end());
        out.push_back(std::move(c));
      }
    return out;
  }

 private:
  static Linear scale(Linear l, double s) {
    for (auto& [k, v] : l.coef) v *= s;
    l.constant *= s;
    return l;
  }
  static void add(Linear& acc, const Linear& t, double s) {
    for (const auto& [k, v] : t.coef) acc.coef[k] += s * v;
    acc.constant += s * t.constant;
  }
  const Reader& r_;
  std::string source_;
  std::map<std::string, std::pair<char, int64_t>> vars_;
  int64_t nx_ = 0, ny_ = 0;
};

}  // namespace

Property parse_vnnlib(const std::string& text, const std::string& source) {
  datasets::require_utf8(text, source, "verify");
  Reader reader(text, source);
  Builder b(reader, source);
  std::vector<SExpr> asserts;
  while (!reader.at_end()) {
    SExpr e = reader.read();
    if (e.is_atom || e.items.empty() || !e.items[0].is_atom)
      reader.fail(e.line, e.col, "expected (declare-const ...) or (assert ...)");
    const std::string& head = e.items[0].atom;
    if (head == "declare-const") {
      if (!asserts.empty()) reader.fail(e.line, e.col, "declare-const after the first assert is not supported");
      b.declare(e);
    } else if (head == "assert") {
      if (e.items.size() != 2) reader.fail(e.line, e.col, "assert takes one formula");
      asserts.push_back(e);
    } else {
      reader.fail(e.items[0].line, e.items[0].col, "unsupported command '" + head + "'");
    }
  }
  if (b.nx() == 0 || b.ny() == 0) throw InputError("verify", source + ": no X_i or no Y_j variables declared");
  if (asserts.empty()) throw InputError("verify", source + ": no assert");

  // The property is the conjunction of all asserts. Asserts that are one conjunction (input
  // bounds, most output constraints) are applied once to every case; the disjunctive ones are
  // combined term by term without multiplying them out in memory (a mixed-radix counter over
  // their terms, the last assert's term changing fastest: the order a multiplied-out form would
  // have), the number of combinations bounded by kMaxDisjuncts and the work by kMaxAtoms per
  // disjunct on average, so a few kilobytes of repeated (or ...) blocks cannot take gigabytes.
  std::vector<Atom> common;
  std::vector<Dnf> choices;  // one DNF per disjunctive assert
  size_t combinations = 1, atoms_per_combination = 0;
  bool impossible = false;
  for (const SExpr& a : asserts) {
    Dnf d = b.formula(a.items[1]);
    if (d.size() == 1) {
      common.insert(common.end(), d[0].begin(), d[0].end());
      continue;
    }
    if (d.empty()) {  // (or) with no disjunct: false, no case at all (the other asserts are still read)
      impossible = true;
      continue;
    }
    if (combinations > kMaxDisjuncts / d.size())
      reader.fail(a.line, a.col, "formula too large (more than 200000 disjuncts)");
    combinations *= d.size();
    size_t widest = 0;
    for (const auto& t : d) widest = std::max(widest, t.size());
    atoms_per_combination += widest;
    if (combinations * atoms_per_combination > kMaxAtoms * 20)
      reader.fail(a.line, a.col, fmt::format("formula too large (its disjunctive form holds more than {} comparisons)",
                                             kMaxAtoms * 20));
    choices.push_back(std::move(d));
  }
  if (impossible) combinations = 0;

  Property prop;
  prop.source = source;
  prop.num_inputs = b.nx();
  prop.num_outputs = b.ny();
  const double inf = std::numeric_limits<double>::infinity();
  // Adds a conjunction's atoms to a case: input bounds narrow the box, output comparisons join
  // the unsafe conjunction; a constant false atom empties it.
  auto apply = [&](const std::vector<Atom>& atoms, InputBox& box, OutputConjunction& out, bool& empty) {
    for (const Atom& atom : atoms) {
      bool has_x = false, has_y = false;
      int64_t nxvars = 0, xvar = -1;
      for (const auto& [id, c] : atom.coef) {
        if (c == 0) continue;
        if (id < b.nx()) {
          has_x = true;
          ++nxvars;
          xvar = id;
        } else {
          has_y = true;
        }
      }
      if (has_x && has_y)
        throw UnsupportedError("verify", source + ": constraints mixing inputs and outputs are not supported");
      if (has_x) {
        if (nxvars > 1)
          throw UnsupportedError("verify", source + ": input constraints must bound single variables (boxes)");
        double c = atom.coef.at(xvar), bound = -atom.constant / c;
        auto i = size_t(xvar);
        if (c > 0) box.upper[i] = std::min(box.upper[i], bound);
        else box.lower[i] = std::max(box.lower[i], bound);
      } else if (has_y) {
        OutputConstraint oc;
        oc.coef.assign(size_t(b.ny()), 0.0);
        for (const auto& [id, c] : atom.coef)
          if (id >= b.nx()) oc.coef[size_t(id - b.nx())] = c;
        oc.constant = atom.constant;
        out.push_back(std::move(oc));
      } else if (atom.constant > 0) {
        empty = true;  // constant false atom
      }
    }
  };
  InputBox base_box{std::vector<double>(size_t(b.nx()), -inf), std::vector<double>(size_t(b.nx()), inf)};
  OutputConjunction base_out;
  bool base_empty = false;
  apply(common, base_box, base_out, base_empty);
  std::map<std::pair<std::vector<double>, std::vector<double>>, size_t> case_of;  // box -> index in prop.cases
  size_t coefficients = 0;
  std::vector<size_t> pick(choices.size(), 0);
  for (size_t combination = 0; combination < combinations; ++combination) {
    if (combination > 0)  // next term choice: the last assert's term changes fastest
      for (size_t k = choices.size(); k-- > 0;) {
        if (++pick[k] < choices[k].size()) break;
        pick[k] = 0;
      }
    InputBox box = base_box;
    OutputConjunction out = base_out;
    bool empty = base_empty;
    for (size_t k = 0; k < choices.size(); ++k) apply(choices[k][pick[k]], box, out, empty);
    for (int64_t i = 0; i < b.nx(); ++i)
      if (box.lower[size_t(i)] > box.upper[size_t(i)]) empty = true;
    if (empty) continue;
    for (int64_t i = 0; i < b.nx(); ++i)
      if (!std::isfinite(box.lower[size_t(i)]) || !std::isfinite(box.upper[size_t(i)]))
        throw InputError("verify", fmt::format("{}: input X_{} has no lower and upper bound", source, i));
    coefficients += out.size() * (size_t(b.ny()) + 4) + 2 * size_t(b.nx());
    if (coefficients > kMaxCoefficients)
      throw InputError("verify", fmt::format("{}: formula too large (its cases hold more than {} coefficients)", source,
                                             kMaxCoefficients));
    auto [it, fresh] = case_of.emplace(std::make_pair(box.lower, box.upper), prop.cases.size());
    if (fresh) prop.cases.push_back(SubProperty{box, {}});
    prop.cases[it->second].unsafe.push_back(std::move(out));
  }
  return prop;
}

Property read_vnnlib(const std::string& path) { return parse_vnnlib(datasets::read_file(path, int64_t(1) << 30), path); }

Property robustness_property(const std::vector<double>& x, int64_t label, int64_t num_outputs, double eps,
                             double clip_min, double clip_max) {
  Property p;
  p.source = "robustness";
  p.num_inputs = int64_t(x.size());
  p.num_outputs = num_outputs;
  SubProperty s;
  s.box.lower.resize(x.size());
  s.box.upper.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    s.box.lower[i] = std::max(clip_min, x[i] - eps);
    s.box.upper[i] = std::min(clip_max, x[i] + eps);
    if (s.box.lower[i] > s.box.upper[i]) s.box.lower[i] = s.box.upper[i] = std::clamp(x[i], clip_min, clip_max);
  }
  for (int64_t j = 0; j < num_outputs; ++j) {
    if (j == label) continue;
    OutputConstraint c;  // y_label - y_j <= 0
    c.coef.assign(size_t(num_outputs), 0.0);
    c.coef[size_t(label)] = 1;
    c.coef[size_t(j)] = -1;
    s.unsafe.push_back({c});
  }
  p.cases.push_back(std::move(s));
  return p;
}

}  // namespace mlaudit::verify
