"""Run a tools/ script under the project's Python: $PYTHON, else the repo-local .venv.

Scripts call `project_python.use()` before importing their heavy dependencies; when they were
started by another interpreter, the process re-executes itself under the project's one (once:
MLAUDIT_PY_REEXEC guards against loops). No fixed machine path is assumed.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def use():
    want = os.environ.get("PYTHON") or os.path.join(ROOT, ".venv", "bin", "python")
    if os.environ.get("MLAUDIT_PY_REEXEC") or not os.path.exists(want):
        return
    if os.path.abspath(sys.executable) != os.path.abspath(want):
        os.environ["MLAUDIT_PY_REEXEC"] = "1"
        os.execv(want, [want] + sys.argv)
