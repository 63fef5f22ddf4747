"""action.yml and .ci/mlaudit.gitlab-ci.yml against the schemas GitHub's and GitLab's editors use
(SchemaStore's GitHub Action schema, GitLab's CI schema: copies in tests/fixtures/ci_schemas,
see its README), offline, with Debian's python3-jsonschema and python3-yaml. Each file must be
valid, and a broken copy of each must be refused (so the check can fail).
usage: python3 check_ci_schemas.py SOURCE_DIR
"""
import copy
import json
import sys
from pathlib import Path

import jsonschema
import yaml

src = Path(sys.argv[1])
schemas = src / "tests/fixtures/ci_schemas"
failures = 0


def errors(schema, doc):
    v = jsonschema.Draft7Validator(schema)
    return sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))


def check(name, schema_file, doc_file, breakers, resolve=None):
    global failures
    schema = json.loads((schemas / schema_file).read_text())
    doc = yaml.safe_load((src / doc_file).read_text())
    if resolve:
        doc = resolve(doc)
    errs = errors(schema, doc)
    if errs:
        failures += 1
        for e in errs[:10]:
            print(f"FAIL {doc_file}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}")
    else:
        print(f"ok   {doc_file} is valid against {schema_file}")
    for what, breaker in breakers:
        bad = copy.deepcopy(doc)
        breaker(bad)
        if not errors(schema, bad):
            failures += 1
            print(f"FAIL {doc_file}: a copy with {what} passed the schema (the check cannot fail)")
        else:
            print(f"ok   {doc_file} with {what} is refused")


def set_runs_using(d):
    d["runs"]["using"] = "docker-compose"


def drop_name(d):
    del d["name"]


def first_job(d):
    return d["mlaudit"]


def as_job(d):
    """The template as a user's job resolves it: GitLab's schema lets hidden keys ('.name') hold
    anything (they may be YAML anchors), so the hidden job is checked as the job that extends
    it, `mlaudit: {extends: .mlaudit-audit}`, becomes."""
    hidden = [k for k in d if k.startswith(".")]
    assert hidden == [".mlaudit-audit"], hidden
    return {**d, "mlaudit": copy.deepcopy(d[".mlaudit-audit"])}


def bad_when(d):
    first_job(d)["artifacts"]["when"] = "sometimes"


def bad_script(d):
    first_job(d)["script"] = 42


check("GitHub Action", "github-actions.json", "action.yml",
      [("runs.using: docker-compose", set_runs_using), ("no name", drop_name)])
check("GitLab CI", "gitlab-ci.json", ".ci/mlaudit.gitlab-ci.yml",
      [("artifacts.when: sometimes", bad_when), ("a number as script", bad_script)], resolve=as_job)
sys.exit(1 if failures else 0)
