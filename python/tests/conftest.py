"""Shared fixtures: the repository, the CLI built beside the module, and a helper that runs it.

ctest (tests/CMakeLists.txt: python_api) sets PYTHONPATH to the build's python/ folder,
MLAUDIT_EXE to the executable of the same build and MLAUDIT_SOURCE to the repository.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

SOURCE = Path(os.environ.get("MLAUDIT_SOURCE", Path(__file__).resolve().parents[2]))
EXE = os.environ.get("MLAUDIT_EXE", str(SOURCE / "build" / "mlaudit"))


@pytest.fixture(scope="session")
def src() -> Path:
    return SOURCE


@pytest.fixture(scope="session")
def run_cli():
    """Run the mlaudit executable; returns (exit code, stdout, stderr)."""

    def run(*args, check=True):
        p = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True)
        if check and p.returncode not in (0, 1):
            raise AssertionError(f"mlaudit {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
        return p.returncode, p.stdout, p.stderr

    return run


@pytest.fixture(scope="session")
def cli_json(run_cli, tmp_path_factory):
    """Run a command with --out FILE through the executable and return the JSON it wrote."""

    def run(*args):
        out = tmp_path_factory.mktemp("cli") / "result.json"
        run_cli(*args, "--out", out, "--quiet")
        return json.loads(out.read_text())

    return run


@pytest.fixture(scope="session")
def fmnist(src):
    x = np.load(src / "datasets/demo/fmnist_x.npy")[:24]
    y = np.load(src / "datasets/demo/fmnist_y.npy")[:24]
    return x, y


@pytest.fixture(scope="session")
def fmnist_files(fmnist, tmp_path_factory):
    d = tmp_path_factory.mktemp("fmnist")
    x, y = fmnist
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    return d / "x.npy", d / "y.npy"
