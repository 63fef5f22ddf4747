#!/usr/bin/env bash
# Validate action.yml and .ci/mlaudit.gitlab-ci.yml against SchemaStore's GitHub Action and GitLab
# CI schemas, as vendored by check-jsonschema (PyPI): pip install check-jsonschema in the
# repository's .venv (or PYTHON's environment). The ctest test_ci_templates checks the structure
# without it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
"$PY" -m check_jsonschema --builtin-schema vendor.github-actions "$ROOT/action.yml"
"$PY" -m check_jsonschema --builtin-schema vendor.gitlab-ci "$ROOT/.ci/mlaudit.gitlab-ci.yml"
