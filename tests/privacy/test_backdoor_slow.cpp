// Neural Cleanse over all 10 classes with the default budget: the planted backdoor is
// flagged on class 0 and the clean twin is not flagged at all (label: slow).
#include <catch2/catch.hpp>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/privacy/backdoor.h"
#include "test_util.h"

using namespace mlaudit;
using mlaudit::test::source_path;

TEST_CASE("privacy: Neural Cleanse flags the backdoored CNN on class 0 and not its clean twin", "[privacy][backdoor][slow]") {
  const engine::Tensor x = datasets::read_npy_float(source_path("datasets/privacy/backdoor_clean_x.npy"));
  const privacy::NeuralCleanseConfig cfg;  // defaults: 60 epochs over 100 images per class
  auto bad = engine::Session::load(source_path("models/privacy/backdoor_cnn.onnx"));
  auto clean = engine::Session::load(source_path("models/privacy/clean_cnn.onnx"));
  const auto rb = privacy::neural_cleanse(*bad, x, {}, cfg);
  const auto rc = privacy::neural_cleanse(*clean, x, {}, cfg);
  for (size_t i = 0; i < rb.triggers.size(); ++i)
    UNSCOPED_INFO("class " << i << ": backdoored L1 " << rb.triggers[i].l1_norm << " index " << rb.anomaly_index[i]
                           << " | clean L1 " << rc.triggers[i].l1_norm << " index " << rc.anomaly_index[i]);
  CHECK(rb.flagged == std::vector<int64_t>{0});
  CHECK(rb.anomaly_index[0] > 2.0);
  CHECK(rc.flagged.empty());
}
