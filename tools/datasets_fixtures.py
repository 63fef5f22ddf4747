#!/usr/bin/env python3
"""Golden fixtures for the datasets module tests (tests/datasets/).

Writes tests/fixtures/datasets/ with files produced by independent
implementations (numpy's own .npy writer, Python's struct + gzip for IDX,
Python's csv module for the CSV golden) and `expected.json` describing what the
C++ readers must return for each file.

Run from the repository root:

    ${PYTHON:-.venv/bin/python} tools/datasets_fixtures.py

Needs only numpy. Output is deterministic (fixed values, gzip mtime 0), so
re-running it leaves the committed fixtures unchanged.
"""
import csv
import gzip
import io
import json
import os
import struct
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "datasets")

# dtype name the C++ reader must produce for each numpy dtype (see datasets/src/npy.cpp).
TARGET = {
    "float16": "float32", "float32": "float32", "float64": "float64",
    "int8": "int32", "int16": "int32", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "int32", "uint32": "int64", "uint64": "int64",
    "bool": "bool",
}


def jsonable(values):
    out = []
    for v in values:
        if isinstance(v, (np.bool_, bool)):
            out.append(int(v))
        elif isinstance(v, (np.integer, int)):
            out.append(int(v))
        else:
            out.append(float(v))  # repr round-trips float64 exactly through JSON
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {"npy": {}, "npy_errors": {}, "idx": {}, "idx_errors": {}, "labels": {}, "csv": {}}

    def save_npy(name, arr, version=None):
        path = os.path.join(OUT, name)
        with open(path, "wb") as f:
            np.lib.format.write_array(f, arr, version=version, allow_pickle=False)
        expected["npy"][name] = {
            "dtype": TARGET[arr.dtype.name],
            "shape": list(arr.shape),
            "values": jsonable(arr.astype(arr.dtype.newbyteorder("=")).ravel(order="C").tolist()),
        }

    # One file per supported dtype, values chosen at the type's edges.
    save_npy("f4.npy", np.array([[0.0, -1.5, 3.25], [1e-8, 65504.0, -0.0]], dtype="<f4"))
    save_npy("f8.npy", np.array([1.0 / 3.0, -2.5e300, 5e-324], dtype="<f8"))
    save_npy("f2.npy", np.array([1.0, -2.0, 0.333251953125, 65504.0, 6e-08], dtype="<f2"))
    save_npy("i1.npy", np.array([-128, 127, 0, -1], dtype="i1"))
    save_npy("i2.npy", np.array([-32768, 32767, -2], dtype="<i2"))
    save_npy("i4.npy", np.array([[-2147483648, 2147483647], [0, -1]], dtype="<i4"))
    save_npy("i8.npy", np.array([-(2 ** 63), 2 ** 63 - 1, 0, 42], dtype="<i8"))
    save_npy("u1.npy", np.array([0, 1, 127, 128, 255], dtype="u1"))
    save_npy("u2.npy", np.array([0, 65535, 7], dtype="<u2"))
    save_npy("u4.npy", np.array([0, 4294967295, 9], dtype="<u4"))
    save_npy("u8.npy", np.array([0, 2 ** 63 - 1, 5], dtype="<u8"))
    save_npy("b1.npy", np.array([[True, False], [False, True]], dtype="?"))
    # Big-endian variants must be byte-swapped on read.
    save_npy("be_f4.npy", np.array([[1.5, -2.25], [1e30, 0.1]], dtype=">f4"))
    save_npy("be_f8.npy", np.array([np.pi, -1e-300], dtype=">f8"))
    save_npy("be_i4.npy", np.array([-5, 123456789], dtype=">i4"))
    save_npy("be_i8.npy", np.array([-(2 ** 62), 3, 2 ** 40 + 1], dtype=">i8"))
    save_npy("be_i2.npy", np.array([-300, 300], dtype=">i2"))
    # Shapes: 0-d, zero-length dimensions.
    save_npy("scalar_f4.npy", np.array(3.5, dtype="<f4"))
    save_npy("scalar_i8.npy", np.array(-7, dtype="<i8"))
    save_npy("empty_f4.npy", np.zeros((0, 3), dtype="<f4"))
    save_npy("empty_i8.npy", np.zeros((0,), dtype="<i8"))
    save_npy("empty_mid_u1.npy", np.zeros((2, 0, 4), dtype="u1"))
    save_npy("rank4_f4.npy", (np.arange(24, dtype="<f4").reshape(1, 2, 3, 4) / 8.0).astype("<f4"))
    # Fortran order (np.save of an F-contiguous array, e.g. DataFrame.to_numpy()): read back in C order.
    save_npy("fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    save_npy("fortran_be_f8_3d.npy", np.asfortranarray((np.arange(24, dtype=">f8") / 3).reshape(2, 3, 4)))
    # Header versions 2.0 and 3.0 (4-byte header length).
    save_npy("v2_f4.npy", np.array([[1.0, 2.0], [3.0, 4.0]], dtype="<f4"), version=(2, 0))
    save_npy("v3_i4.npy", np.array([9, 8, 7], dtype="<i4"), version=(3, 0))

    def error_case(name, data, message):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        expected["npy_errors"][name] = message

    def npy_bytes(arr, **kw):
        b = io.BytesIO()
        np.lib.format.write_array(b, arr, **kw)
        return b.getvalue()

    error_case("object.npy", npy_bytes(np.array([1, "a", None], dtype=object), allow_pickle=True),
               "object arrays are not supported")
    error_case("complex.npy", npy_bytes(np.array([1 + 2j], dtype="<c8")), "unsupported dtype '<c8'")
    error_case("unicode.npy", npy_bytes(np.array(["ab"], dtype="<U2")), "unsupported dtype '<U2'")
    error_case("structured.npy", npy_bytes(np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")])),
               "structured (record) dtypes are not supported")
    full = npy_bytes(np.arange(100, dtype="<f4").reshape(10, 10))
    error_case("truncated.npy", full[:-100], "truncated data: expected 400 bytes of data, found 300")
    error_case("bad_magic.npy", b"\x93NUMPX" + full[6:], "not a .npy file (bad magic bytes")
    error_case("version9.npy", full[:6] + b"\x09\x00" + full[8:], "unsupported .npy format version 9.0")
    error_case("header_truncated.npy", full[:40], "truncated .npy header")
    error_case("malformed_header.npy", full.replace(b"'shape': (10, 10)", b"'shape': (10; 10)"),
               "malformed .npy header")
    error_case("missing_key.npy", full.replace(b"'fortran_order'", b"'fortran_ordex'"),
               "malformed .npy header (needs the keys 'descr', 'fortran_order' and 'shape'")
    error_case("empty.npy", b"", "not a .npy file (bad magic bytes")

    # Labels: integer dtypes pass through, [N,1] is flattened, floats must hold integers.
    def save_labels(name, arr, result):
        with open(os.path.join(OUT, name), "wb") as f:
            np.lib.format.write_array(f, arr)
        expected["labels"][name] = result

    save_labels("labels_i8.npy", np.array([3, 0, 9, 1], dtype="<i8"), {"values": [3, 0, 9, 1]})
    save_labels("labels_col_i4.npy", np.array([[2], [1], [0]], dtype="<i4"), {"values": [2, 1, 0]})
    save_labels("labels_f8.npy", np.array([0.0, 1.0, 2.0, -1.0], dtype="<f8"), {"values": [0, 1, 2, -1]})
    save_labels("labels_bool.npy", np.array([True, False, True], dtype="?"), {"values": [1, 0, 1]})
    save_labels("labels_u1.npy", np.array([255, 0], dtype="u1"), {"values": [255, 0]})
    save_labels("labels_bad_f4.npy", np.array([0.0, 1.0, 2.5, 1.0], dtype="<f4"),
                {"error": "labels must be integers, but element 2 is 2.5"})
    save_labels("labels_nan_f8.npy", np.array([1.0, np.nan], dtype="<f8"),
                {"error": "labels must be integers, but element 1 is nan"})
    save_labels("labels_onehot.npy", np.eye(3, dtype="<f4"),
                {"error": "labels must have shape [N] or [N,1], got [3,3]"})

    # IDX: header 00 00 <type> <ndim>, big-endian uint32 dims, big-endian payload.
    idx_types = {
        "u8": (0x08, ">u1", "uint8"),
        "i8": (0x09, ">i1", "int32"),
        "i16": (0x0B, ">i2", "int32"),
        "i32": (0x0C, ">i4", "int32"),
        "f32": (0x0D, ">f4", "float32"),
        "f64": (0x0E, ">f8", "float32"),
    }
    idx_values = {
        "u8": np.array([[0, 17, 255], [128, 1, 2]]),
        "i8": np.array([-128, 127, -1, 0]),
        "i16": np.array([[-32768, 32767], [-2, 1000]]),
        "i32": np.array([-2147483648, 2147483647, 12345]),
        "f32": np.array([[0.5, -3.0], [1e-3, 7.25]]),
        "f64": np.array([0.1, -2.0, 1e10]),
    }

    def idx_bytes(code, arr):
        return struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()

    for key, (code, dt, target) in idx_types.items():
        arr = idx_values[key].astype(dt)
        raw = idx_bytes(code, arr)
        # The reader converts f64 to float32 (idx.h); the golden is the float32-rounded value.
        values = arr.astype("float32").ravel().tolist() if key == "f64" else arr.ravel().tolist()
        for suffix, data in (("", raw), (".gz", gzip.compress(raw, mtime=0))):
            name = f"{key}.idx{suffix}"
            with open(os.path.join(OUT, name), "wb") as f:
                f.write(data)
            expected["idx"][name] = {"dtype": target, "shape": list(arr.shape), "values": jsonable(values)}

    big = idx_bytes(0x08, np.arange(60, dtype=">u1").reshape(3, 4, 5))
    idx_errors = {
        "truncated.idx": (big[:-7], "truncated data: expected 60 bytes of data, found 53"),
        "truncated.idx.gz": (gzip.compress(big, mtime=0)[:-12], "truncated gzip data"),
        "corrupt.idx.gz": (gzip.compress(big, mtime=0)[:10] + b"\xff" * 30, "corrupt gzip data"),
        "bad_type.idx": (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x05", "unsupported IDX data type 0x0a"),
        "bad_magic.idx": (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX file (bad magic bytes"),
        "header_truncated.idx": (big[:9], "truncated IDX header: 3 dimensions need 16 bytes, found 9"),
    }
    for name, (data, message) in idx_errors.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        expected["idx_errors"][name] = message

    # CSV golden: parsed by Python's csv module (RFC 4180 dialect, the independent reference).
    tricky = (
        'id,name,score,note\r\n'
        '1,"Smith, J.",3.5,"said ""hi"""\r\n'
        '2,,-1e3,\r\n'
        '3,"multi\nline",+7,plain\r\n'
        '4,"",0.25,"a,b,c"\r\n'
    )
    with open(os.path.join(OUT, "tricky.csv"), "w", newline="") as f:
        f.write(tricky)
    rows = list(csv.reader(io.StringIO(tricky, newline="")))
    header, data = rows[0], rows[1:]
    expected["csv"]["tricky.csv"] = {"columns": header, "cells": [[r[c] for r in data] for c in range(len(header))]}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote fixtures to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
