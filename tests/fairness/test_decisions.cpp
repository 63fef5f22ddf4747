// The fairness module's table loading (table.h) and decisions (decisions.h) without the CLI.
#include <catch2/catch.hpp>

#include <fstream>

#include "fairness_test_util.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/fairness/decisions.h"
#include "mlaudit/fairness/table.h"

using namespace mlaudit;
using namespace mlaudit::fairness;

namespace {

LoadedTable csv_table(const std::string& text) {
  LoadedTable lt;
  lt.table = datasets::parse_csv(text, "t.csv");
  lt.rows_read = int64_t(lt.table.rows());
  lt.format = "csv";
  return lt;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string flag(const std::string& p) {
  std::string s = "--" + p;
  for (auto& c : s)
    if (c == '_') c = '-';
  return s;
}

// y: label, p: decision, s: score, g: group, a: age; row 3 has a missing decision.
const char* kTable =
    "y,p,s,g,a\n"
    "1,1,0.9,m,20\n"
    "0,1,0.7,f,30\n"
    "1,,0.2,f,40\n"
    "0,0,0.1,m,50\n"
    "1,0,0.4,f,60\n";

}  // namespace

TEST_CASE("fairness table: cells as numbers, favourable values and missing cells", "[fairness][table]") {
  double v = 0;
  CHECK(parse_number("+1.5", v));
  CHECK(v == 1.5);
  CHECK_FALSE(parse_number("1.5x", v));
  CHECK_FALSE(parse_number("", v));
  CHECK(same_value("1", "1.0"));
  CHECK(same_value("Low", "Low"));
  CHECK_FALSE(same_value("Low", "low"));
  CHECK(is_missing("?"));
  CHECK(is_missing(""));
  CHECK_FALSE(is_missing("0"));
  auto lt = csv_table(kTable);
  CHECK(message_of([&] { number_at(lt.table, "g", "m", 1); }) == "fairness: t.csv: row 2: column 'g' value 'm' is not a number");
}

TEST_CASE("fairness table: load_table reads a CSV, keeps the first rows and names its parameters", "[fairness][table]") {
  const std::string dir = test::temp_dir("fairness_table");
  const std::string path = dir + "/t.csv";
  std::ofstream(path) << kTable;
  TableOptions o;
  o.data = path;
  o.limit = 2;
  auto lt = load_table(o);
  CHECK(lt.format == "csv");
  CHECK(lt.rows_read == 5);
  CHECK(lt.table.rows() == 2);
  o.limit = -1;
  CHECK(message_of([&] { load_table(o); }) == "fairness: limit must be >= 0");
  o.spell = flag;
  CHECK(message_of([&] { load_table(o); }) == "fairness: --limit must be >= 0");
  o.data = dir + "/t.npy";
  CHECK(message_of([&] { load_table(o); }) == "fairness: a .npy table needs --columns naming its columns");
  o.data = path;
  o.limit = 0;
  o.encoding = "ebcdic";
  CHECK(message_of([&] { load_table(o); }).find("--encoding: 'ebcdic' is not an encoding") != std::string::npos);
}

TEST_CASE("fairness decisions: parse_bins and parse_onehot", "[fairness][decisions]") {
  auto bins = parse_bins("a:25,90/2; inc:q4");
  REQUIRE(bins.size() == 2);
  CHECK(bins["a"].edges == std::vector<double>{25, 45});
  CHECK(bins["a"].origin == "bins");
  CHECK(bins["inc"].quantiles == 4);
  CHECK(parse_bins("a:25", flag)["a"].origin == "--bins");
  CHECK(message_of([] { parse_bins("a:q1"); }) ==
        "fairness: bins: 'a:q1': qN needs a whole number of quantile bins N in 2..100");
  CHECK(message_of([] { parse_bins("a:x", flag); }) == "fairness: --bins: 'x' is not a number (or a fraction like 8/255)");
  CHECK(message_of([] { parse_bins("25,45"); }) == "fairness: bins: '25,45' is not COLUMN:EDGE[,EDGE...] or COLUMN:qN");
  auto onehot = parse_onehot("race=r_a, r_b");
  CHECK(onehot["race"] == std::vector<std::string>{"r_a", "r_b"});
  CHECK(message_of([] { parse_onehot("race=r_a"); }) == "fairness: onehot: 'race=r_a' needs at least two columns");
}

TEST_CASE("fairness decisions: a prediction column, dropped rows, positive class and references", "[fairness][decisions]") {
  auto lt = csv_table(kTable);
  DecisionOptions o;
  o.label_column = "y";
  o.prediction = "p";
  o.protected_columns = std::vector<std::string>{"g", "a"};
  o.bins = parse_bins("a:45");
  o.positive = "unfavorable";
  auto in = prepare_inputs(lt, o);
  CHECK(in.rows == std::vector<size_t>{0, 1, 3, 4});
  REQUIRE(lt.dropped.size() == 1);
  CHECK(lt.dropped[0].first == "missing value in column 'p'");
  CHECK(lt.dropped[0].second == 1);
  CHECK(in.decisions.y_true == std::vector<uint8_t>{1, 0, 0, 1});
  CHECK(in.decisions.y_pred == std::vector<uint8_t>{1, 1, 0, 0});
  CHECK(in.decisions.scores.empty());
  CHECK(in.favorable == "1");
  CHECK(in.favorable_prediction == "1");
  CHECK(in.decision == "column 'p' == 1");
  CHECK(in.positive_label == "y != 1");
  CHECK(in.positive_decision == "p != 1");
  CHECK(in.positive_origin == "positive");
  CHECK_FALSE(in.labels_only);
  REQUIRE(in.attributes.size() == 2);
  CHECK(in.attributes[0].groups == std::vector<std::string>{"f", "m"});
  CHECK(in.attributes[1].groups == std::vector<std::string>{"a<45", "a>=45"});
  CHECK(in.attributes_json[1]["kind"] == "binned");
  CHECK(in.attributes_json[1]["bins"]["origin"] == "bins");

  auto ref = reference_groups({"g=m", "a=a<45"}, in.attributes, true);
  CHECK(ref.at("g&a") == "m&a<45");
  CHECK(message_of([&] { reference_groups({"m"}, in.attributes, true); }) ==
        "fairness: reference 'm': name the attribute (ATTRIBUTE=GROUP) when there are several");

  auto x = numeric_columns(lt.table, {"s", "a"}, in.rows);
  CHECK(x == std::vector<double>{0.9, 20, 0.7, 30, 0.1, 50, 0.4, 60});
}

TEST_CASE("fairness decisions: a risk score against a threshold and labels only", "[fairness][decisions]") {
  auto lt = csv_table(kTable);
  DecisionOptions o;
  o.label_column = "y";
  o.score = "s";
  o.threshold = 0.5;
  o.score_direction = "higher-is-unfavorable";
  o.protected_columns = std::vector<std::string>{"g"};
  auto in = prepare_inputs(lt, o);
  CHECK(in.rows.size() == 5);
  CHECK(in.decisions.y_pred == std::vector<uint8_t>{0, 0, 1, 1, 1});
  REQUIRE(in.decisions.scores.size() == 5);
  CHECK(in.decisions.scores[0] == Approx(0.1));
  CHECK(in.decision == "column 's' < 0.5 (higher is unfavorable)");
  CHECK(in.positive_decision == "s < 0.5");
  CHECK(in.direction_origin == "score_direction");

  DecisionOptions labels;
  labels.label_column = "y";
  labels.protected_columns = std::vector<std::string>{"g"};
  auto lt2 = csv_table(kTable);
  auto l = prepare_inputs(lt2, labels);
  CHECK(l.labels_only);
  CHECK(l.decisions.y_pred.empty());
  CHECK(l.decision == "none: no prediction, score or model, so only the labels' base rates are reported");
}

TEST_CASE("fairness decisions: errors name the parameter, or the flag with the CLI's spelling", "[fairness][decisions]") {
  DecisionOptions o;
  o.label_column = "y";
  o.score = "s";
  o.protected_columns = std::vector<std::string>{"g"};
  auto lt = csv_table(kTable);
  CHECK(message_of([&] { prepare_inputs(lt, o); }) ==
        "fairness: score needs threshold (decision = score >= threshold) or a prediction column");
  o.spell = flag;
  CHECK(message_of([&] { prepare_inputs(lt, o); }) ==
        "fairness: --score needs --threshold (decision = score >= threshold) or a --prediction column");
  o.score.reset();
  o.favorable = "yes";
  o.prediction = "p";
  CHECK(message_of([&] { prepare_inputs(lt, o); }) ==
        "fairness: --favorable 'yes' matches no row of label column 'y' (values: 1, 0); --favorable sets the label's "
        "and the decision's value alike: give them apart with --favorable-label and --favorable-prediction");
  DecisionOptions m;
  m.label_column = "y";
  m.protected_columns = std::vector<std::string>{"g"};
  m.model = "m.onnx";
  m.features = std::vector<std::string>{"s"};
  m.threshold = 2;
  CHECK(message_of([&] { prepare_inputs(lt, m); }) ==
        "fairness: threshold 2 is not a probability in (0, 1]: with model it thresholds softmax[:, 1] (a score column's "
        "threshold goes with score)");
}

TEST_CASE("fairness decisions: one-hot attributes and counterfactual encodings", "[fairness][decisions]") {
  auto lt = csv_table("y,p,r_a,r_b,sex,g\n1,1,1,0,0,m\n0,1,0,1,1,f\n1,0,0,1,1,m\n");
  DecisionOptions o;
  o.label_column = "y";
  o.prediction = "p";
  o.protected_columns = std::vector<std::string>{"race", "sex", "g"};
  o.onehot = parse_onehot("race=r_a,r_b");
  o.features = std::vector<std::string>{"r_a", "r_b", "sex", "g"};
  auto in = prepare_inputs(lt, o);
  REQUIRE(in.attributes.size() == 3);
  CHECK(in.attributes[0].groups == std::vector<std::string>{"r_a", "r_b"});
  CHECK(in.attributes[0].codes == std::vector<int32_t>{0, 1, 1});
  CHECK(in.attributes_json[0]["kind"] == "one-hot");
  FeatureEncoding race, sex, g;
  CHECK(counterfactual_encoding(in.attributes[0], in, race).empty());
  CHECK(race.columns == std::vector<int64_t>{0, 1});
  CHECK(counterfactual_encoding(in.attributes[1], in, sex).empty());
  CHECK(sex.columns == std::vector<int64_t>{2});
  CHECK(sex.values == std::vector<float>{0, 1});
  CHECK(counterfactual_encoding(in.attributes[2], in, g) == "group 'f' is not a number, so it has no feature value");

  auto bad = csv_table("y,p,r_a,r_b\n1,1,1,1\n0,0,0,1\n");
  DecisionOptions b;
  b.label_column = "y";
  b.prediction = "p";
  b.protected_columns = std::vector<std::string>{"race"};
  b.onehot = parse_onehot("race=r_a,r_b");
  CHECK(message_of([&] { prepare_inputs(bad, b); }) == "fairness: t.csv: row 1: several one-hot columns of 'race' are 1");
}
