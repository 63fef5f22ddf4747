"""mlaudit for Python: audit a trained ONNX model from a notebook or a pipeline.

Everything here runs the C++ code the ``mlaudit`` executable runs, in this process: a
``Model`` is the engine's session, and ``attack``, ``certify``, ``corrupt``, ``explain``,
``fairness``, ``verify`` and ``audit`` run the CLI's own commands with the same options,
checks and defaults, and return the result JSON that the command writes with ``--out`` as a
dict (the ``mlaudit.<kind>/1`` contracts in docs/report-schema.json). The numbers are the
CLI's numbers.

    import mlaudit, numpy as np
    model = mlaudit.Model("models/fmnist_cnn.onnx")
    logits = model.run(x)                                  # NumPy in, NumPy out
    r = mlaudit.attack(model, x, y, attack="apgd-ce", eps=[8 / 255])
    r["results"][0]["robust_accuracy"]

Options are the command's long options with ``-`` written ``_`` (``clip_max=1``,
``n0=100``); lists become comma lists, ``True`` a flag. Bad input raises ``InputError``
(``UnsupportedError`` for an operator or opset this build lacks) with the CLI's one-line
message. Long calls release the GIL, stop on Ctrl-C (``KeyboardInterrupt``) and show a
progress bar when tqdm is installed (``progress=False`` hides it, a callable receives
``(label, unit, done, total, end)``). docs/python.md has the whole API.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import _core
from ._core import InputError, UnsupportedError

__all__ = [
    "Model", "InputError", "UnsupportedError", "attack", "certify", "corrupt", "explain", "fairness",
    "verify", "audit", "cli", "version", "__version__",
]


def version() -> dict:
    """``mlaudit --version --json`` as a dict: version, commit, build type, CPU kernels, CUDA, modules."""
    return json.loads(_core.version_text(True))


__version__ = version().get("version", "0")


# ---------------------------------------------------------------------------------------------
# Progress bars and Ctrl-C

class _Bars:
    """One tqdm bar per progress line the command reports (tqdm.auto: notebooks and terminals)."""

    def __init__(self, tqdm):
        self._tqdm = tqdm
        self._bars = {}

    def __call__(self, label, unit, done, total, end):
        bar = self._bars.get(label)
        if bar is None:
            if end:
                return
            bar = self._bars[label] = self._tqdm(total=total, desc=label, unit=" " + unit, delay=1.0, leave=True)
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if end:
            bar.close()
            del self._bars[label]

    def close(self):
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def _progress_callback(progress):
    if progress is False or progress is None and os.environ.get("MLAUDIT_NO_PROGRESS"):
        return None
    if callable(progress):
        return progress
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress is True:
            raise InputError("progress=True needs tqdm (pip install tqdm)") from None
        return None
    return _Bars(tqdm)


# ---------------------------------------------------------------------------------------------
# Options -> the command's argv

def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # shortest text that reads back as the same double
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _options(options: Mapping[str, Any]) -> list[str]:
    args = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple, np.ndarray)):
            args += [flag, ",".join(_fmt(v) for v in value)]
        else:
            args += [flag, _fmt(value)]
    return args


def cli(*args: str, threads: int = 0, device: str = "cpu", output: str | None = None, quiet: bool = False,
        progress=None) -> int:
    """Run any command as ``mlaudit [--threads N] [--device D] [--output O] ARGS...`` would,
    in this process; returns the exit code (0 ok, 1 a gate failed). ``cli("info", "-m", "m.onnx")``."""
    if not args:
        raise InputError("cli: give a command, e.g. cli('info', '-m', 'model.onnx')")
    cb = _progress_callback(progress)
    try:
        return _core.run_command(args[0], [_fmt(a) for a in args[1:]], threads=threads, device=device,
                                 output=output or "", quiet=quiet, progress=cb)
    finally:
        if isinstance(cb, _Bars):
            cb.close()


# ---------------------------------------------------------------------------------------------
# Models

class Model:
    """An ONNX model loaded by mlaudit's engine.

    ``Model(path)`` loads a file; ``Model.from_bytes(data)`` a serialized ModelProto;
    ``Model.from_torch(module, example)`` exports a PyTorch module in memory with the user's
    example input. ``device`` is ``cpu``, ``cuda`` or ``auto``; ``output`` names the output to
    audit (default: a classifier's probabilities, else the first float output), as the CLI's
    ``--output``.
    """

    def __init__(self, path: str | os.PathLike, *, device: str = "cpu", output: str | None = None, threads: int = 0):
        self._path = os.fspath(path)
        self._tmp = None
        self.device, self.output, self.threads = device, output, threads
        self._session = _core._Session(self._path, device=device, output=output or "", threads=threads)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "model.onnx", device: str = "cpu", output: str | None = None,
                   threads: int = 0) -> "Model":
        """A model from the bytes of an ONNX file (``name`` names it in messages)."""
        self = cls.__new__(cls)
        self.device, self.output, self.threads = device, output, threads
        self._session = _core._Session.from_bytes(bytes(data), name, device=device, output=output or "",
                                                  threads=threads)
        # The commands read models from files: keep one for them, removed with the Model.
        self._tmp = tempfile.TemporaryDirectory(prefix="mlaudit-model-")
        self._path = os.path.join(self._tmp.name, os.path.basename(name) or "model.onnx")
        with open(self._path, "wb") as f:
            f.write(data)
        return self

    @classmethod
    def from_torch(cls, module, example, *, device: str = "cpu", output: str | None = None, threads: int = 0,
                   **export_kwargs) -> "Model":
        """Export a ``torch.nn.Module`` with ``torch.onnx.export(module, example, ...)`` in
        memory (the exporter's defaults unless ``export_kwargs`` say otherwise) and load it.
        ``example`` is one input tensor or a tuple of them. The module is exported as it is
        (call ``module.eval()`` first for inference behaviour); an exporter error is raised as
        ``InputError`` naming the exporter's own message."""
        try:
            import torch
        except ImportError:
            raise InputError("from_torch: PyTorch is not installed (pip install torch)") from None
        args = example if isinstance(example, tuple) else (example,)
        name = f"{type(module).__name__}.onnx"
        # exported into a folder the Model owns: exporters may write the weights beside the
        # graph (external data), which the engine and the commands read from the model's folder
        tmp = tempfile.TemporaryDirectory(prefix="mlaudit-model-")
        path = os.path.join(tmp.name, name)
        try:
            torch.onnx.export(module, args, path, **export_kwargs)
        except Exception as e:  # the exporter's own message, whatever its type
            tmp.cleanup()
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise InputError(f"from_torch: torch.onnx.export failed on {type(module).__name__}: "
                             f"{type(e).__name__}: {first}") from e
        if not os.path.exists(path):
            tmp.cleanup()
            raise InputError(f"from_torch: torch.onnx.export wrote no model for {type(module).__name__}")
        model = cls(path, device=device, output=output, threads=threads)
        model._tmp = tmp
        return model

    @property
    def path(self) -> str:
        """The ONNX file the commands read (a temporary copy for in-memory models)."""
        return self._path

    @property
    def inputs(self) -> list[tuple[str, str, tuple]]:
        """``(name, dtype, shape)`` per graph input; ``None`` for a dynamic dimension."""
        return self._session.inputs

    @property
    def outputs(self) -> list[tuple[str, str, tuple]]:
        return self._session.outputs

    @property
    def audited_output(self) -> str:
        return self._session.audited_output

    @property
    def backend(self) -> str:
        return self._session.backend

    def _arrays(self, args, kwargs) -> list:
        names = [i[0] for i in self._session.inputs]
        if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
            kwargs, args = dict(args[0]), ()
        if kwargs:
            unknown = sorted(set(kwargs) - set(names))
            if unknown or args:
                raise InputError(f"{self._path}: inputs are {names}; got {unknown or 'positional and named'}")
            missing = [n for n in names if n not in kwargs]
            if missing:
                raise InputError(f"{self._path}: missing input(s) {missing}")
            return [kwargs[n] for n in names]
        return list(args)

    def _prepared(self, inputs, named) -> list:
        """Arrays as the engine reads them: C-contiguous, of each graph input's dtype (no copy
        when they already are)."""
        arrays = self._arrays(inputs, named)
        kinds = [i[1] for i in self._session.inputs]
        if len(arrays) != len(kinds):
            raise InputError(f"{self._path}: the model has {len(kinds)} input(s), {len(arrays)} given")
        return [np.ascontiguousarray(a, dtype=np.dtype(k)) for a, k in zip(arrays, kinds)]

    def run(self, *inputs, **named):
        """Forward pass: arrays in the graph's input order (or by name, or one dict). Returns
        the output array when the model has one output, else a dict output name -> array.
        Arrays are not copied when they are C-contiguous, of the input's dtype and 64-byte
        aligned; results share the engine's buffers."""
        ys = [np.asarray(y) for y in self._session.run(self._prepared(inputs, named))]
        outs = self._session.outputs
        return ys[0] if len(ys) == 1 else {o[0]: y for o, y in zip(outs, ys)}

    def gradient(self, *inputs, seed, **named):
        """The vector-Jacobian product d<seed, output>/d input for the audited output: the
        gradient of the first input (an array), or a list when the model has several inputs
        (None for non-float ones)."""
        seed = np.ascontiguousarray(seed, dtype=np.float32)
        gs = [None if g is None else np.asarray(g) for g in self._session.gradient(self._prepared(inputs, named), seed)]
        return gs[0] if len(gs) == 1 else gs

    def __repr__(self):
        return f"mlaudit.Model({self._path!r}, backend={self.backend!r})"


def _model_args(model) -> tuple[str, dict]:
    """--model PATH and the global options a Model carries (device, output, threads)."""
    if isinstance(model, Model):
        return model.path, {"device": model.device, "output": model.output, "threads": model.threads}
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model), {}
    raise InputError(f"model: expected an mlaudit.Model or a path to an ONNX file, got {type(model).__name__}")


# ---------------------------------------------------------------------------------------------
# Commands

class _Workdir:
    """Temporary files for one command: arrays as .npy, tables as CSV, the result JSON."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="mlaudit-")
        self.name = self._dir.name

    def npy(self, stem: str, array, dtype=None) -> str:
        if isinstance(array, (str, os.PathLike)):
            return os.fspath(array)  # a file the command reads itself
        a = np.asarray(array, dtype=dtype)
        if a.dtype.kind == "f" and a.dtype != np.float64:  # float16 and float32 as float32
            a = a.astype(np.float32, copy=False)
        path = os.path.join(self.name, stem + ".npy")
        np.save(path, np.ascontiguousarray(a))
        return path

    def labels(self, y) -> str:
        if isinstance(y, (str, os.PathLike)):
            return os.fspath(y)
        a = np.asarray(y)
        if a.dtype.kind not in "iub":
            if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                raise InputError(f"labels: expected integer class labels, got {a.dtype}")
        return self.npy("labels", a.astype(np.int64))

    def path(self, name: str) -> str:
        return os.path.join(self.name, name)

    def close(self):
        self._dir.cleanup()


def _call(command: str, args: list[str], globals_: dict, progress, out: str) -> dict:
    g = {"threads": 0, "device": "cpu", "output": None}
    g.update({k: v for k, v in globals_.items() if v is not None})
    cb = _progress_callback(progress)
    try:
        rc = _core.run_command(command, args, threads=int(g["threads"]), device=g["device"], output=g["output"] or "",
                               quiet=True, progress=cb)
    finally:
        if isinstance(cb, _Bars):
            cb.close()
    if rc not in (0, 1):
        raise InputError(f"{command}: failed with exit code {rc} (see the messages above)")
    if not os.path.exists(out):
        raise InputError(f"{command}: wrote no result (exit code {rc})")
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def _split_globals(options: dict) -> dict:
    """threads=, device=, output= (the CLI's global options) out of a command's keyword options."""
    return {k: options.pop(k) for k in ("threads", "device", "output") if k in options}


def _labelled(command: str, model, x, y, options: dict, progress, *, extra: Callable | None = None,
              post: Callable | None = None) -> dict:
    path, g = _model_args(model)
    g.update(_split_globals(options))
    w = _Workdir()
    try:
        out = w.path("result.json")
        args = ["--model", path, "--data", w.npy("data", x), "--labels", w.labels(y), "--out", out]
        if extra:
            args += extra(w)
        result = _call(command, args + _options(options), g, progress, out)
        if post:
            post(w, result)
        return result
    finally:
        w.close()


def attack(model, x, y, *, attack: str = "pgd", eps=None, save_adv: bool = False, progress=None, **options) -> dict:
    """``mlaudit attack``: adversarial robustness under ``attack`` (fgsm, pgd, apgd-ce,
    apgd-dlr, apgd-t, square, fab, fab-t, cw-l2, deepfool, hsja, boundary, autoattack,
    exact-tree) at each radius in ``eps``; ``norm="linf"|"l2"``, ``steps``, ``restarts``,
    ``seed``, ``clip_min``/``clip_max``, ... Returns the mlaudit.attack/1 dict;
    ``save_adv=True`` adds the last radius's adversarial inputs as ``result["adversarial"]``."""

    def extra(w):
        return ["--save-adv", w.path("adv.npy")] if save_adv else []

    def post(w, result):
        if save_adv and os.path.exists(w.path("adv.npy")):
            result["adversarial"] = np.load(w.path("adv.npy"))

    return _labelled("attack", model, x, y, {"attack": attack, "eps": _as_list(eps), **options}, progress,
                     extra=extra, post=post)


def _as_list(v):
    if v is None or isinstance(v, (list, tuple, np.ndarray)):
        return v
    return [v]


def certify(model, x, y, *, sigma: float, progress=None, **options) -> dict:
    """``mlaudit certify``: randomized smoothing (Cohen et al. 2019; n0=100, n=100000,
    alpha=0.001 by default) with noise ``sigma``. Returns the mlaudit.certify/1 dict."""
    return _labelled("certify", model, x, y, {"sigma": sigma, **options}, progress)


def corrupt(model, x, y, *, progress=None, **options) -> dict:
    """``mlaudit corrupt``: accuracy under common corruptions (``corruptions=[...]``,
    ``severities="1-5"``). Returns the mlaudit.corrupt/1 dict."""
    return _labelled("corrupt", model, x, y, options, progress)


def explain(model, x, y=None, *, method: str = "integrated-gradients", progress=None, **options) -> dict:
    """``mlaudit explain``: attributions by ``method`` (integrated-gradients, saliency,
    deeplift, smoothgrad, occlusion, kernel-shap, lime, permutation, tree-shap, ...);
    ``background`` may be an array. Returns the mlaudit.explain/1 dict with the attributions
    as ``result["attributions"]`` (a NumPy array)."""
    path, g = _model_args(model)
    g.update(_split_globals(options))
    w = _Workdir()
    try:
        out, attributions = w.path("result.json"), w.path("attributions.npy")
        args = ["--model", path, "--data", w.npy("data", x), "--method", method, "--out", out,
                "--attributions", attributions]
        if y is not None:
            args += ["--labels", w.labels(y)]
        if options.get("background") is not None and not isinstance(options["background"], (str, os.PathLike)):
            options["background"] = w.npy("background", options["background"])
        result = _call("explain", args + _options(options), g, progress, out)
        if os.path.exists(attributions):
            result["attributions"] = np.load(attributions)
        return result
    finally:
        w.close()


def _write_table(table, path: str) -> str:
    """A pandas DataFrame or a dict of equal-length columns as a CSV with a header."""
    if hasattr(table, "to_csv") and hasattr(table, "columns"):
        table.to_csv(path, index=False)
        return path
    if not isinstance(table, Mapping):
        raise InputError(f"fairness: table: expected a pandas DataFrame, a dict of columns or a path, "
                         f"got {type(table).__name__}")
    cols = {str(k): np.asarray(v) for k, v in table.items()}
    lengths = {k: (len(v) if v.ndim else -1) for k, v in cols.items()}
    if len(set(lengths.values())) > 1 or any(n < 0 for n in lengths.values()):
        raise InputError(f"fairness: table: columns must be 1-D and of one length, got {lengths}")
    with open(path, "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        wr.writerow(cols.keys())
        for row in zip(*cols.values()):
            wr.writerow(_fmt(v.item() if hasattr(v, "item") else v) for v in row)
    return path


def fairness(table, *, label_column: str | None = None, protected: Sequence[str] | str | None = None, model=None,
             features: Sequence[str] | str | None = None, progress=None, **options) -> dict:
    """``mlaudit fairness``: group fairness of decisions, with bootstrap intervals (AIF360's
    and Fairlearn's definitions). ``table`` is a pandas DataFrame, a dict of columns or a
    file path (CSV, or a ``dataset="adult"|"german"|"compas"`` file). Decisions come from
    ``prediction=COLUMN``, ``score=COLUMN`` with ``threshold``, or ``model`` run on
    ``features``. Returns the mlaudit.fairness/1 dict."""
    g = _split_globals(options)
    w = _Workdir()
    try:
        out = w.path("result.json")
        data = os.fspath(table) if isinstance(table, (str, os.PathLike)) else _write_table(table, w.path("table.csv"))
        args = ["--data", data, "--out", out]
        if label_column is not None:
            args += ["--label-column", label_column]
        if protected is not None:
            args += ["--protected", protected if isinstance(protected, str) else ",".join(protected)]
        if model is not None:
            path, mg = _model_args(model)
            g = {**mg, **g}
            args += ["--model", path]
        if features is not None:
            args += ["--features", features if isinstance(features, str) else ",".join(features)]
        return _call("fairness", args + _options(options), g, progress, out)
    finally:
        w.close()


def verify(model, *, vnnlib=None, x=None, y=None, eps=None, progress=None, **options) -> dict:
    """``mlaudit verify``: a VNN-LIB property (``vnnlib=PATH``), or local robustness of the
    rows of ``x`` at each radius in ``eps`` (``clip_min``/``clip_max`` the input domain).
    Returns the mlaudit.verify/1 dict (sat answers carry a counterexample the engine
    re-checked; unsat rests on outward-rounded bounds)."""
    path, g = _model_args(model)
    g.update(_split_globals(options))
    w = _Workdir()
    try:
        out = w.path("result.json")
        args = ["--model", path, "--out", out]
        if vnnlib is not None:
            args += ["--vnnlib", os.fspath(vnnlib)]
        if x is not None:
            args += ["--data", w.npy("data", x)]
        if y is not None:
            args += ["--labels", w.labels(y)]
        if eps is not None:
            args += ["--eps", ",".join(_fmt(e) for e in _as_list(eps))]
        return _call("verify", args + _options(options), g, progress, out)
    finally:
        w.close()


def audit(config: str | os.PathLike, *, out: str | os.PathLike | None = None, pdf: bool = False, progress=None,
          **options) -> dict:
    """``mlaudit audit``: every section of an audit YAML, the gates and the report. ``out`` is
    the report folder (report.json/.html/.md, junit.xml; a temporary one when not given);
    ``pdf=True`` renders report.pdf too. Returns report.json as a dict; its gates say whether
    the audit passed (the CLI's exit code 1 is not an exception here)."""
    g = _split_globals(options)
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="mlaudit-audit-")
        out = tmp.name
    try:
        args = ["--config", os.fspath(config), "--out", os.fspath(out)] + ([] if pdf else ["--no-pdf"])
        return _call("audit", args + _options(options), g, progress, os.path.join(os.fspath(out), "report.json"))
    finally:
        if tmp is not None:
            tmp.cleanup()
