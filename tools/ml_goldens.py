#!/usr/bin/env python3
"""Golden fixtures for the engine's ai.onnx.ml ops (engine/src/ops_ml.cpp).

Run from the repository root (CPU, about half a minute):

    ${PYTHON:-.venv/bin/python} tools/ml_goldens.py [--out tests/fixtures/engine/ops_ml]

Writes tests/fixtures/engine/ops_ml/ in the format of tests/fixtures/engine/ops/ (see
tools/engine_goldens.py), read by tests/engine/op_cases.h:

  <case>/model.onnx      the model: hand-built with onnx.helper (one ai.onnx.ml node at the ml opset
                         that matters: LabelEncoder 2 and 4, TreeEnsembleClassifier/Regressor 1 and 3,
                         TreeEnsemble 5, every post_transform, aggregate function, node mode and SVM
                         kernel), converted from scikit-learn (skl2onnx), XGBoost or LightGBM
                         (onnxmltools), or one of ONNX's own ai.onnx.ml backend node tests
  <case>/input_<k>.npy   k-th graph input (float32 or int64; float64 for the ONNX node tests)
  <case>/output_<k>.npy  k-th numeric graph output, computed by onnxruntime (CPU, no graph
                         optimizations), the reference implementation of these ops
  cases.json             [{"name", "op", "inputs", "outputs", "grads": [], "seeds": [], "input_names",
                           "input_dtypes", "output_names", "note"}]

The ops are forward-only (not differentiable), so there are no seeds and no gradients.

Output order: the engine's Session makes the audited output (the first float output, or one
named "probabilities"/"output_probability") output 0, so every model's graph outputs are
reordered here with its float outputs first; string outputs (labels of classifiers with string
classes) stay in the model, where the engine's loader lists them as opaque, and are not written.
Converted classifiers are exported without ZipMap (options zipmap=False).

Check: each ONNX node test's onnxruntime outputs must match the test's own expected outputs
(rtol 1e-5), or the script fails.
"""
import argparse
import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

ML = "ai.onnx.ml"
CASES = []
NP_OF = {TP.FLOAT: np.float32, TP.DOUBLE: np.float64, TP.INT64: np.int64, TP.STRING: object}


def case(name, op, note=""):
    def deco(fn):
        CASES.append((name, op, note, fn))
        return fn
    return deco


# ---------------------------------------------------------------- model helpers
def model_of(nodes, inputs, outputs, ml_opset=1, opset=17, inits=()):
    """inputs/outputs: [(name, elem type, shape)]."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(ML, ml_opset)],
                          producer_name="mlaudit-ml-goldens")
    m.ir_version = 10 if ml_opset >= 5 else 8
    return m


def ml_node(op, inputs, outputs, **attrs):
    # Integer literals given for a FLOAT/FLOATS attribute become floats (onnx.helper would make INTS).
    schema = onnx.defs.get_schema(op, domain=ML)
    for k, v in attrs.items():
        a = schema.attributes.get(k)
        if a is not None and a.type == onnx.AttributeProto.FLOATS and isinstance(v, (list, tuple)):
            attrs[k] = [float(e) for e in v]
        elif a is not None and a.type == onnx.AttributeProto.FLOAT:
            attrs[k] = float(v)
    return helper.make_node(op, inputs, outputs, domain=ML, name=f"{op.lower()}_0", **attrs)


def one_node(op, x, out_types, ml_opset=1, extra_inputs=(), **attrs):
    """A one-node model on input x (float32/int64 array); out_types: [(name, elem type, shape or None)]."""
    xt = {np.dtype(np.float32): TP.FLOAT, np.dtype(np.float64): TP.DOUBLE, np.dtype(np.int64): TP.INT64}[x.dtype]
    ins = [("X", xt, list(x.shape))] + [(n, t, s) for n, t, s, _ in extra_inputs]
    node = ml_node(op, ["X"] + [n for n, _, _, _ in extra_inputs], [n for n, _, _ in out_types], **attrs)
    feeds = {"X": x}
    feeds.update({n: a for n, _, _, a in extra_inputs})
    return model_of([node], ins, out_types, ml_opset=ml_opset), feeds


def tensor(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def rows(rng, n, f, scale=1.0):
    return (rng.standard_normal((n, f)) * scale).astype(np.float32)


LABEL = ("label", TP.INT64, None)
SLABEL = ("label", TP.STRING, None)
SCORES = ("scores", TP.FLOAT, None)


# ---------------------------------------------------------------- simple ops
@case("scaler_per_feature", "Scaler", "(x - offset) * scale per feature, [4, 3]")
def _(rng):
    return one_node("Scaler", rows(rng, 4, 3), [("Y", TP.FLOAT, None)], offset=[0.5, -1.0, 2.0], scale=[2.0, 0.5, -1.5])


@case("scaler_single_int64", "Scaler", "one offset/scale for all, int64 input -> float")
def _(rng):
    x = rng.integers(-5, 5, (3, 4)).astype(np.int64)
    return one_node("Scaler", x, [("Y", TP.FLOAT, None)], offset=[1.5], scale=[0.25])


@case("scaler_1d", "Scaler", "1-D input [5]: features along axis 0")
def _(rng):
    return one_node("Scaler", rows(rng, 1, 5)[0], [("Y", TP.FLOAT, None)], offset=[0, 1, 2, 3, 4], scale=[1, 2, 3, 4, 5])


def _norm(rng, norm, x=None):
    if x is None:
        x = rows(rng, 4, 3)
        x[2] = 0  # a zero row is left unchanged
        x[3] = -np.abs(x[3])  # all negative (MAX divides by a negative max)
    return one_node("Normalizer", x, [("Y", TP.FLOAT, None)], norm=norm)


@case("normalizer_max", "Normalizer", "MAX, with a zero row and an all-negative row")
def _(rng):
    return _norm(rng, "MAX")


@case("normalizer_l1", "Normalizer", "L1, with a zero row")
def _(rng):
    return _norm(rng, "L1")


@case("normalizer_l2", "Normalizer", "L2 (sign kept), with a zero row")
def _(rng):
    return _norm(rng, "L2")


@case("normalizer_l2_int64_1d", "Normalizer", "L2 of an int64 1-D input")
def _(rng):
    return _norm(rng, "L2", np.array([3, -4, 0, 12], dtype=np.int64))


@case("binarizer", "Binarizer", "x > 0.3 -> 1 else 0 (values equal to the threshold give 0)")
def _(rng):
    x = rows(rng, 3, 4)
    x[0, 0] = 0.3
    return one_node("Binarizer", x, [("Y", TP.FLOAT, None)], threshold=0.3)


@case("imputer_nan_per_feature", "Imputer", "NaN replaced by a per-feature value")
def _(rng):
    x = rows(rng, 4, 3)
    x[0, 1] = x[2, 0] = x[3, 2] = np.nan
    return one_node("Imputer", x, [("Y", TP.FLOAT, None)], imputed_value_floats=[10.0, 20.0, 30.0],
                    replaced_value_float=float("nan"))


@case("imputer_value_single", "Imputer", "value 0 replaced by one imputed value")
def _(rng):
    x = rows(rng, 3, 3)
    x[1, 1] = x[2, 0] = 0.0
    return one_node("Imputer", x, [("Y", TP.FLOAT, None)], imputed_value_floats=[-7.0], replaced_value_float=0.0)


@case("imputer_int64", "Imputer", "int64: -1 replaced per feature")
def _(rng):
    x = np.array([[1, -1, 3], [-1, 5, -1]], dtype=np.int64)
    return one_node("Imputer", x, [("Y", TP.INT64, None)], imputed_value_int64s=[100, 200, 300], replaced_value_int64=-1)


@case("one_hot_encoder_int64", "OneHotEncoder", "int64 [2, 3] -> [2, 3, 4], unknown category -> zeros")
def _(rng):
    x = np.array([[1, 5, 3], [7, 1, 99]], dtype=np.int64)
    return one_node("OneHotEncoder", x, [("Y", TP.FLOAT, None)], cats_int64s=[1, 3, 5, 7], zeros=1)


@case("one_hot_encoder_float", "OneHotEncoder", "float input truncated to int64 categories, [4]")
def _(rng):
    x = np.array([2.0, 0.0, 2.7, -1.0], dtype=np.float32)
    return one_node("OneHotEncoder", x, [("Y", TP.FLOAT, None)], cats_int64s=[0, 1, 2])


@case("array_feature_extractor_2d", "ArrayFeatureExtractor", "columns [2, 0, 2] of [3, 4]")
def _(rng):
    return one_node("ArrayFeatureExtractor", rows(rng, 3, 4), [("Z", TP.FLOAT, None)],
                    extra_inputs=[("idx", TP.INT64, [3], np.array([2, 0, 2], dtype=np.int64))])


@case("array_feature_extractor_1d", "ArrayFeatureExtractor", "1-D input [5] -> [1, 2]")
def _(rng):
    return one_node("ArrayFeatureExtractor", rows(rng, 1, 5)[0], [("Z", TP.FLOAT, None)],
                    extra_inputs=[("idx", TP.INT64, [2], np.array([4, 1], dtype=np.int64))])


@case("array_feature_extractor_int64_3d", "ArrayFeatureExtractor", "int64 [2, 2, 3], last axis indices [1]")
def _(rng):
    x = rng.integers(-9, 9, (2, 2, 3)).astype(np.int64)
    return one_node("ArrayFeatureExtractor", x, [("Z", TP.INT64, None)],
                    extra_inputs=[("idx", TP.INT64, [1], np.array([1], dtype=np.int64))])


@case("feature_vectorizer", "FeatureVectorizer", "[3,2] + [3,4] cut to 3 + [3,1] padded to 2")
def _(rng):
    a, b, c = rows(rng, 3, 2), rows(rng, 3, 4), rows(rng, 3, 1)
    node = ml_node("FeatureVectorizer", ["a", "b", "c"], ["Y"], inputdimensions=[2, 3, 2])
    m = model_of([node], [("a", TP.FLOAT, [3, 2]), ("b", TP.FLOAT, [3, 4]), ("c", TP.FLOAT, [3, 1])],
                 [("Y", TP.FLOAT, None)])
    return m, {"a": a, "b": b, "c": c}


@case("feature_vectorizer_int64", "FeatureVectorizer", "int64 [2,3] + [2,2] -> float [2,5]")
def _(rng):
    a, b = rng.integers(-5, 5, (2, 3)).astype(np.int64), rng.integers(-5, 5, (2, 2)).astype(np.int64)
    node = ml_node("FeatureVectorizer", ["a", "b"], ["Y"], inputdimensions=[3, 2])
    m = model_of([node], [("a", TP.INT64, [2, 3]), ("b", TP.INT64, [2, 2])], [("Y", TP.FLOAT, None)])
    return m, {"a": a, "b": b}


# ---------------------------------------------------------------- LabelEncoder
@case("label_encoder_v2_int_int", "LabelEncoder", "v2 int64 -> int64, default_int64 -5")
def _(rng):
    x = np.array([[1, 2, 3], [9, 2, 1]], dtype=np.int64)
    return one_node("LabelEncoder", x, [("Y", TP.INT64, None)], ml_opset=2, keys_int64s=[1, 2, 3],
                    values_int64s=[10, 20, 30], default_int64=-5)


@case("label_encoder_v2_int_float", "LabelEncoder", "v2 int64 -> float, default -0.0")
def _(rng):
    x = np.array([1, 4, 3], dtype=np.int64)
    return one_node("LabelEncoder", x, [("Y", TP.FLOAT, None)], ml_opset=2, keys_int64s=[1, 3], values_floats=[0.5, 1.5])


@case("label_encoder_v2_float_int", "LabelEncoder", "v2 float -> int64; NaN input does not match a NaN key at v2")
def _(rng):
    x = np.array([0.5, 1.25, np.nan, 7.0], dtype=np.float32)
    return one_node("LabelEncoder", x, [("Y", TP.INT64, None)], ml_opset=2, keys_floats=[0.5, 1.25, float("nan")],
                    values_int64s=[1, 2, 3])


@case("label_encoder_v2_float_float", "LabelEncoder", "v2 float -> float, default_float 9")
def _(rng):
    x = np.array([[0.5, 2.0], [3.0, 0.5]], dtype=np.float32)
    return one_node("LabelEncoder", x, [("Y", TP.FLOAT, None)], ml_opset=2, keys_floats=[0.5, 3.0],
                    values_floats=[-1.0, -2.0], default_float=9.0)


@case("label_encoder_v4_tensors", "LabelEncoder", "v4 keys_tensor/values_tensor/default_tensor (float), NaN key matches")
def _(rng):
    x = np.array([0.5, np.nan, 2.0, 4.0], dtype=np.float32)
    return one_node("LabelEncoder", x, [("Y", TP.FLOAT, None)], ml_opset=4,
                    keys_tensor=tensor("keys", [0.5, float("nan"), 2.0]),
                    values_tensor=tensor("values", [5.0, 6.0, 7.0]),
                    default_tensor=tensor("default", [-3.0]))


@case("label_encoder_v4_int_tensors", "LabelEncoder", "v4 int64 -> int64 through tensors")
def _(rng):
    x = np.array([[4, 5], [6, 7]], dtype=np.int64)
    return one_node("LabelEncoder", x, [("Y", TP.INT64, None)], ml_opset=4,
                    keys_tensor=tensor("keys", [4, 6], np.int64), values_tensor=tensor("values", [40, 60], np.int64),
                    default_tensor=tensor("default", [0], np.int64))


@case("label_encoder_v4_float_int_attrs", "LabelEncoder", "v4 with list attributes float -> int64, default -1")
def _(rng):
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    return one_node("LabelEncoder", x, [("Y", TP.INT64, None)], ml_opset=4, keys_floats=[1.0, 3.0], values_int64s=[7, 8])


# ---------------------------------------------------------------- Linear models
def _linear_classifier(rng, classes, post, labels=None, strings=False, f=4):
    coef = (rng.standard_normal(classes * f) * 0.7).astype(np.float32)
    icpt = (rng.standard_normal(classes) * 0.3).astype(np.float32)
    attrs = dict(coefficients=coef.tolist(), intercepts=icpt.tolist(), post_transform=post)
    labels = labels if labels is not None else list(range(10, 10 + max(classes, 2)))
    if strings:
        attrs["classlabels_strings"] = [f"c{v}" for v in labels]
    elif labels:
        attrs["classlabels_ints"] = labels
    return one_node("LinearClassifier", rows(rng, 5, f), [SLABEL if strings else LABEL, SCORES], **attrs)


for _post in ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"):
    case(f"linear_classifier_3c_{_post.lower()}", "LinearClassifier", f"3 classes, post_transform {_post}")(
        lambda rng, p=_post: _linear_classifier(rng, 3, p))


@case("linear_classifier_probit", "LinearClassifier", "3 classes PROBIT on scores kept in (0, 1)")
def _(rng):
    f = 3
    node = ml_node("LinearClassifier", ["X"], ["label", "scores"], coefficients=[0.05, -0.02, 0.03] * 3,
                   intercepts=[0.3, 0.5, 0.7], classlabels_ints=[0, 1, 2], post_transform="PROBIT")
    return model_of([node], [("X", TP.FLOAT, [4, f])], [LABEL, SCORES]), {"X": rows(rng, 4, f)}


@case("linear_classifier_binary_none", "LinearClassifier", "one score, two labels: scores [1 - s, s], label by sign")
def _(rng):
    return _linear_classifier(rng, 1, "NONE", labels=[3, 8])


@case("linear_classifier_binary_logistic", "LinearClassifier", "one score, two labels, LOGISTIC: onnxruntime writes [1 - s, s] without the logistic")
def _(rng):
    return _linear_classifier(rng, 1, "LOGISTIC", labels=[3, 8])


@case("linear_classifier_one_label", "LinearClassifier", "one score, no class labels given: labels 1/0 by sign")
def _(rng):
    return _linear_classifier(rng, 1, "NONE", labels=[])


@case("linear_classifier_strings", "LinearClassifier", "string classes: the label output is a string tensor (not computed)")
def _(rng):
    return _linear_classifier(rng, 3, "SOFTMAX", strings=True)


@case("linear_regressor_1t", "LinearRegressor", "one target, intercept")
def _(rng):
    return one_node("LinearRegressor", rows(rng, 4, 3), [("Y", TP.FLOAT, None)], coefficients=[0.5, -1.0, 2.0],
                    intercepts=[0.25], targets=1)


@case("linear_regressor_1t_logistic", "LinearRegressor", "one target, LOGISTIC: onnxruntime skips it for one score")
def _(rng):
    return one_node("LinearRegressor", rows(rng, 4, 3), [("Y", TP.FLOAT, None)], coefficients=[0.5, -1.0, 2.0],
                    targets=1, post_transform="LOGISTIC")


@case("linear_regressor_2t_softmax", "LinearRegressor", "two targets, SOFTMAX over them")
def _(rng):
    return one_node("LinearRegressor", rows(rng, 4, 3), [("Y", TP.FLOAT, None)],
                    coefficients=[0.5, -1.0, 2.0, 1.0, 0.0, -0.5], intercepts=[0.1, -0.2], targets=2,
                    post_transform="SOFTMAX")


@case("linear_regressor_3t_no_intercepts", "LinearRegressor", "three targets, intercepts of the wrong length are ignored")
def _(rng):
    return one_node("LinearRegressor", rows(rng, 2, 2), [("Y", TP.FLOAT, None)],
                    coefficients=[1, 2, 3, 4, 5, 6], intercepts=[9.0], targets=3)


# ---------------------------------------------------------------- SVM
def _svc(rng, classes, kernel, params, post="NONE", proba=False, f=3, per_class=None, strings=False):
    per_class = per_class or [2] * classes
    nv = sum(per_class)
    attrs = dict(kernel_type=kernel, kernel_params=params, vectors_per_class=per_class,
                 support_vectors=(rng.standard_normal(nv * f)).astype(np.float32).tolist(),
                 coefficients=(rng.standard_normal((classes - 1) * nv)).astype(np.float32).tolist(),
                 rho=(rng.standard_normal(classes * (classes - 1) // 2) * 0.3).astype(np.float32).tolist(),
                 post_transform=post)
    if strings:
        attrs["classlabels_strings"] = [f"k{i}" for i in range(classes)]
    else:
        attrs["classlabels_ints"] = list(range(5, 5 + classes))
    if proba:
        pairs = classes * (classes - 1) // 2
        attrs["prob_a"] = (-1.0 - rng.random(pairs)).astype(np.float32).tolist()
        attrs["prob_b"] = (rng.standard_normal(pairs) * 0.1).astype(np.float32).tolist()
    return one_node("SVMClassifier", rows(rng, 6, f), [SLABEL if strings else LABEL, SCORES], **attrs)


@case("svm_classifier_rbf_3c", "SVMClassifier", "RBF, 3 classes one-vs-one: 3 decision values, label by votes")
def _(rng):
    return _svc(rng, 3, "RBF", [0.5, 0.0, 3.0])


@case("svm_classifier_rbf_3c_proba", "SVMClassifier", "RBF, 3 classes, prob_a/prob_b: Platt + pairwise coupling")
def _(rng):
    return _svc(rng, 3, "RBF", [0.5, 0.0, 3.0], proba=True, per_class=[1, 2, 3])


@case("svm_classifier_rbf_4c_proba_softmax", "SVMClassifier", "RBF, 4 classes, probabilities then SOFTMAX")
def _(rng):
    return _svc(rng, 4, "RBF", [0.3, 0.0, 3.0], proba=True, post="SOFTMAX")


@case("svm_classifier_linear_2c", "SVMClassifier", "LINEAR kernel, 2 classes, NONE: scores [-d, d]")
def _(rng):
    return _svc(rng, 2, "LINEAR", [0.0, 0.0, 0.0])


@case("svm_classifier_linear_2c_logistic", "SVMClassifier", "LINEAR kernel, 2 classes, LOGISTIC: scores [1 - d, d]")
def _(rng):
    return _svc(rng, 2, "LINEAR", [0.0, 0.0, 0.0], post="LOGISTIC")


@case("svm_classifier_poly_3c", "SVMClassifier", "POLY (gamma x.v + coef0)^3, 3 classes, SOFTMAX_ZERO")
def _(rng):
    return _svc(rng, 3, "POLY", [0.4, 1.0, 3.0], post="SOFTMAX_ZERO")


@case("svm_classifier_sigmoid_3c", "SVMClassifier", "SIGMOID tanh(gamma x.v + coef0), 3 classes, LOGISTIC")
def _(rng):
    return _svc(rng, 3, "SIGMOID", [0.2, -0.5, 0.0], post="LOGISTIC")


@case("svm_classifier_2c_proba", "SVMClassifier", "RBF, 2 classes with probabilities")
def _(rng):
    return _svc(rng, 2, "RBF", [0.5, 0.0, 3.0], proba=True)


@case("svm_classifier_strings", "SVMClassifier", "string classes: only the scores are computed")
def _(rng):
    return _svc(rng, 3, "RBF", [0.5, 0.0, 3.0], strings=True)


@case("svm_classifier_liblinear_3c", "SVMClassifier", "no support vectors (liblinear): x.w_c + rho_0, argmax")
def _(rng):
    f = 3
    node = ml_node("SVMClassifier", ["X"], ["label", "scores"], kernel_type="LINEAR", kernel_params=[0.0, 0.0, 0.0],
                   coefficients=rng.standard_normal(3 * f).astype(np.float32).tolist(), rho=[0.2],
                   classlabels_ints=[1, 2, 3])
    return model_of([node], [("X", TP.FLOAT, [5, f])], [LABEL, SCORES]), {"X": rows(rng, 5, f)}


@case("svm_classifier_liblinear_2c", "SVMClassifier", "liblinear, 2 classes with mixed-sign weights: label rule of onnxruntime")
def _(rng):
    f = 2
    node = ml_node("SVMClassifier", ["X"], ["label", "scores"], kernel_type="LINEAR", kernel_params=[0.0, 0.0, 0.0],
                   coefficients=[0.5, -1.0, -0.5, 1.0], rho=[0.1], classlabels_ints=[4, 9])
    return model_of([node], [("X", TP.FLOAT, [6, f])], [LABEL, SCORES]), {"X": rows(rng, 6, f)}


def _svr(rng, kernel, params, one_class=0, f=3, nv=4):
    return one_node("SVMRegressor", rows(rng, 5, f), [("Y", TP.FLOAT, None)], kernel_type=kernel, kernel_params=params,
                    n_supports=nv, support_vectors=rng.standard_normal(nv * f).astype(np.float32).tolist(),
                    coefficients=rng.standard_normal(nv).astype(np.float32).tolist(), rho=[0.3], one_class=one_class)


@case("svm_regressor_rbf", "SVMRegressor", "RBF, 4 support vectors")
def _(rng):
    return _svr(rng, "RBF", [0.7, 0.0, 3.0])


@case("svm_regressor_poly", "SVMRegressor", "POLY degree 2")
def _(rng):
    return _svr(rng, "POLY", [0.5, 0.5, 2.0])


@case("svm_regressor_sigmoid_one_class", "SVMRegressor", "SIGMOID, one_class: sign of the decision")
def _(rng):
    return _svr(rng, "SIGMOID", [0.5, 0.1, 0.0], one_class=1)


@case("svm_regressor_liblinear", "SVMRegressor", "no support vectors: x.w + rho_0")
def _(rng):
    return one_node("SVMRegressor", rows(rng, 4, 3), [("Y", TP.FLOAT, None)], kernel_type="LINEAR",
                    kernel_params=[0.0, 0.0, 0.0], coefficients=[0.5, 1.0, -2.0], rho=[0.25], n_supports=0)


# ---------------------------------------------------------------- tree ensembles (ml opset 1 and 3)
# Two trees over 3 features. Tree 0: node 0 (x0 <mode> 0.2) -> true 1, false 2; node 1 (x1 <= -0.3)
# -> true 3, false 4; leaves 2, 3, 4. Tree 1: node 0 (x2 > 0.1) -> true 1, false 2; leaves 1, 2.
def _tree_attrs(mode0="BRANCH_LEQ", missing=None, as_tensor=False, mode1="BRANCH_GT", tdtype=np.float32):
    a = dict(nodes_treeids=[0, 0, 0, 0, 0, 1, 1, 1], nodes_nodeids=[0, 1, 2, 3, 4, 0, 1, 2],
             nodes_featureids=[0, 1, 0, 0, 0, 2, 0, 0],
             nodes_modes=[mode0, "BRANCH_LEQ", "LEAF", "LEAF", "LEAF", mode1, "LEAF", "LEAF"],
             nodes_truenodeids=[1, 3, 0, 0, 0, 1, 0, 0], nodes_falsenodeids=[2, 4, 0, 0, 0, 2, 0, 0])
    values = [0.2, -0.3, 0, 0, 0, 0.1, 0, 0]
    if as_tensor:
        a["nodes_values_as_tensor"] = tensor("v", values, tdtype)
    else:
        a["nodes_values"] = values
    if missing is not None:
        a["nodes_missing_value_tracks_true"] = missing
    return a


LEAVES = [(0, 2), (0, 3), (0, 4), (1, 1), (1, 2)]


def _tree_x(rng, n=8):
    x = rows(rng, n, 3)
    x[0, 0] = 0.2  # exactly on a threshold
    x[1, 0] = np.nan  # missing value
    x[2, 2] = np.nan
    return x


def _regressor(rng, targets=1, aggregate="SUM", post="NONE", base=None, ml_opset=1, as_tensor=False, **tree_kw):
    a = _tree_attrs(as_tensor=as_tensor, **tree_kw)
    ids, nodes, trees, weights = [], [], [], []
    for t in range(targets):
        for tree, node in LEAVES:
            ids.append(t)
            trees.append(tree)
            nodes.append(node)
            weights.append(float(np.round(rng.standard_normal(), 3)))
    a.update(n_targets=targets, target_ids=ids, target_nodeids=nodes, target_treeids=trees,
             aggregate_function=aggregate, post_transform=post)
    if as_tensor:
        a["target_weights_as_tensor"] = tensor("w", weights, np.float32)
    else:
        a["target_weights"] = weights
    if base is not None:
        if as_tensor:
            a["base_values_as_tensor"] = tensor("b", base, np.float32)
        else:
            a["base_values"] = base
    return one_node("TreeEnsembleRegressor", _tree_x(rng), [("Y", TP.FLOAT, None)], ml_opset=ml_opset, **a)


for _agg in ("SUM", "AVERAGE", "MIN", "MAX"):
    case(f"tree_regressor_1t_{_agg.lower()}", "TreeEnsembleRegressor", f"v1, one target, {_agg}, base 0.5, NaN inputs")(
        lambda rng, g=_agg: _regressor(rng, 1, g, base=[0.5]))
    case(f"tree_regressor_2t_{_agg.lower()}", "TreeEnsembleRegressor", f"v1, two targets, {_agg}, base values")(
        lambda rng, g=_agg: _regressor(rng, 2, g, base=[0.5, -0.25]))

for _mode in ("BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"):
    case(f"tree_regressor_mode_{_mode.lower()}", "TreeEnsembleRegressor", f"root mode {_mode} (x0 = 0.2 on the threshold)")(
        lambda rng, m=_mode: _regressor(rng, 1, mode0=m))

for _post in ("SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"):
    case(f"tree_regressor_3t_{_post.lower()}", "TreeEnsembleRegressor", f"three targets, {_post}")(
        lambda rng, p=_post: _regressor(rng, 3, post=p))


@case("tree_regressor_1t_logistic_ignored", "TreeEnsembleRegressor", "one target, LOGISTIC: onnxruntime applies only PROBIT to one score")
def _(rng):
    return _regressor(rng, 1, post="LOGISTIC")


@case("tree_regressor_1t_probit", "TreeEnsembleRegressor", "one target, PROBIT of an average in (0, 1)")
def _(rng):
    m, feeds = _regressor(rng, 1, aggregate="AVERAGE", post="PROBIT", base=[0.5])
    for a in m.graph.node[0].attribute:
        if a.name == "target_weights":
            a.floats[:] = [0.1, -0.2, 0.05, 0.15, -0.1]
    return m, feeds


@case("tree_regressor_missing_tracks_true", "TreeEnsembleRegressor", "nodes_missing_value_tracks_true: NaN takes the true branch")
def _(rng):
    return _regressor(rng, 2, missing=[1, 0, 0, 0, 0, 1, 0, 0])


@case("tree_regressor_mixed_modes_missing", "TreeEnsembleRegressor", "roots LT and NEQ with missing tracks (mixed-mode path)")
def _(rng):
    return _regressor(rng, 1, mode0="BRANCH_LT", mode1="BRANCH_NEQ", missing=[1, 1, 0, 0, 0, 1, 0, 0])


@case("tree_regressor_v3_as_tensor", "TreeEnsembleRegressor", "ml opset 3: nodes_values/target_weights/base_values as float tensors")
def _(rng):
    return _regressor(rng, 2, base=[0.5, 1.5], ml_opset=3, as_tensor=True)


def _classifier(rng, classes, class_ids_fn, post="NONE", base=None, labels=None, ml_opset=1, as_tensor=False,
                strings=False, positive=False):
    a = _tree_attrs(as_tensor=as_tensor, tdtype=np.float64)
    ids, nodes, trees, weights = [], [], [], []
    for tree, node in LEAVES:
        for c in class_ids_fn(tree, node):
            ids.append(c)
            trees.append(tree)
            nodes.append(node)
            w = float(np.round(rng.standard_normal(), 3))
            weights.append(abs(w) * 0.4 if positive else w)
    a.update(class_ids=ids, class_nodeids=nodes, class_treeids=trees, post_transform=post)
    if as_tensor:
        a["class_weights_as_tensor"] = tensor("w", weights, np.float64)
    else:
        a["class_weights"] = weights
    labels = labels if labels is not None else list(range(classes))
    if strings:
        a["classlabels_strings"] = [f"s{v}" for v in labels]
    else:
        a["classlabels_int64s"] = labels
    if base is not None:
        if as_tensor:
            a["base_values_as_tensor"] = tensor("b", base, np.float64)
        else:
            a["base_values"] = base
    x = _tree_x(rng)
    if as_tensor:
        # double input: keep values off the thresholds (the engine compares in float32, where
        # 0.2f equals the threshold 0.2f; in double they differ)
        x[0, 0] = 0.25
        x = x.astype(np.float64)
    return one_node("TreeEnsembleClassifier", x, [SLABEL if strings else LABEL, SCORES], ml_opset=ml_opset, **a)


ALL3 = lambda tree, node: [0, 1, 2]  # noqa: E731
SOME3 = lambda tree, node: [node % 3] if tree == 0 else [0, 2]  # noqa: E731 (class 1 missing on some paths)

for _post in ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"):
    case(f"tree_classifier_3c_{_post.lower()}", "TreeEnsembleClassifier", f"3 classes, every class on every leaf, {_post}")(
        lambda rng, p=_post: _classifier(rng, 3, ALL3, post=p, labels=[7, 8, 9]))


@case("tree_classifier_3c_sparse_base", "TreeEnsembleClassifier", "3 classes, some classes absent on some leaves, base values")
def _(rng):
    return _classifier(rng, 3, SOME3, base=[0.1, -0.2, 0.3])


@case("tree_classifier_3c_sparse_nobase", "TreeEnsembleClassifier", "3 classes, some classes never scored for a row (no base)")
def _(rng):
    return _classifier(rng, 3, SOME3)


@case("tree_classifier_binary_one_class_positive", "TreeEnsembleClassifier", "binary, weights on class 1 only, all positive: [1 - p, p]")
def _(rng):
    return _classifier(rng, 2, lambda t, n: [1], positive=True, labels=[3, 7])


@case("tree_classifier_binary_one_class_logistic", "TreeEnsembleClassifier", "binary, weights on class 1 only, mixed signs, LOGISTIC")
def _(rng):
    return _classifier(rng, 2, lambda t, n: [1], post="LOGISTIC", labels=[3, 7])


@case("tree_classifier_binary_one_class_none", "TreeEnsembleClassifier", "binary, class-1 weights with mixed signs, NONE: [-s, s]")
def _(rng):
    return _classifier(rng, 2, lambda t, n: [1], labels=[3, 7])


@case("tree_classifier_binary_both_classes", "TreeEnsembleClassifier", "binary, weights on both classes (random forest style), labels [3, 7]")
def _(rng):
    return _classifier(rng, 2, lambda t, n: [0, 1], positive=True, labels=[3, 7])


@case("tree_classifier_binary_class0_logistic", "TreeEnsembleClassifier", "binary, positive weights on class 0 only, LOGISTIC: [1 - sigmoid(s), sigmoid(s)]")
def _(rng):
    return _classifier(rng, 2, lambda t, n: [0], post="LOGISTIC", positive=True, labels=[3, 7])


@case("tree_classifier_binary_class0_probit", "TreeEnsembleClassifier", "binary, class 0 only, PROBIT of one score (second column 0)")
def _(rng):
    m, feeds = _classifier(rng, 2, lambda t, n: [0], post="PROBIT", positive=True, labels=[3, 7])
    return m, feeds


@case("tree_classifier_binary_base2", "TreeEnsembleClassifier", "binary, class-1 weights, two base values, LOGISTIC")
def _(rng):
    return _classifier(rng, 2, lambda t, n: [1], post="LOGISTIC", base=[0.3, -0.4], labels=[0, 1])


@case("tree_classifier_binary_base1", "TreeEnsembleClassifier", "binary, class-1 weights, one base value, LOGISTIC")
def _(rng):
    return _classifier(rng, 2, lambda t, n: [1], post="LOGISTIC", base=[0.3], labels=[0, 1])


@case("tree_classifier_binary_probit", "TreeEnsembleClassifier", "binary, both classes, PROBIT of small positive scores")
def _(rng):
    return _classifier(rng, 2, lambda t, n: [0, 1], post="PROBIT", positive=True)


@case("tree_classifier_v3_as_tensor", "TreeEnsembleClassifier", "ml opset 3: *_as_tensor double attributes and double input (computed in float32 by the engine), 3 classes, SOFTMAX")
def _(rng):
    return _classifier(rng, 3, ALL3, post="SOFTMAX", base=[0.1, 0.2, 0.3], ml_opset=3, as_tensor=True)


@case("tree_classifier_strings", "TreeEnsembleClassifier", "string classes: only the probabilities are computed")
def _(rng):
    return _classifier(rng, 3, ALL3, post="SOFTMAX", strings=True)


# ---------------------------------------------------------------- TreeEnsemble (ml opset 5)
def _te5(rng, targets=2, aggregate=1, post=0, member=False, leaf_tree=False, missing=None):
    # Tree 0: node 0 (x0 <= 0.2, or x1 in {1, 3} when member) -> true node 1, false leaf 0;
    #         node 1 (x2 < -0.1) -> true leaf 1, false leaf 2.
    # Tree 1: node 2 (x1 >= 0.0) -> true leaf 3, false leaf 4.
    # Tree 2 (leaf_tree): node 3 whose two branches are leaf 5.
    modes = [6 if member else 0, 1, 2]
    feats = [1 if member else 0, 2, 1]
    splits = [0.2, -0.1, 0.0]
    tn, fn, tl, fl = [1, 1, 3], [0, 2, 4], [0, 1, 1], [1, 1, 1]
    roots = [0, 2]
    nleaves = 5
    if leaf_tree:
        modes.append(0), feats.append(0), splits.append(0.0), tn.append(5), fn.append(5), tl.append(1), fl.append(1)
        roots.append(3)
        nleaves = 6
    leaf_t = [int(i % targets) for i in range(nleaves)]
    leaf_w = np.round(rng.standard_normal(nleaves), 3)
    attrs = dict(n_targets=targets, aggregate_function=aggregate, post_transform=post, tree_roots=roots,
                 nodes_modes=tensor("m", modes, np.uint8), nodes_featureids=feats,
                 nodes_splits=tensor("s", splits, np.float32), nodes_truenodeids=tn, nodes_falsenodeids=fn,
                 nodes_trueleafs=tl, nodes_falseleafs=fl, leaf_targetids=leaf_t,
                 leaf_weights=tensor("w", leaf_w, np.float32))
    if member:
        attrs["membership_values"] = tensor("mv", [1.0, 3.0, np.nan], np.float32)
    if missing is not None:
        attrs["nodes_missing_value_tracks_true"] = missing
    x = _tree_x(rng)
    if member:
        x[:, 1] = np.array([1, 2, 3, np.nan, 0, 1, 3, 5], dtype=np.float32)
    return one_node("TreeEnsemble", x, [("Y", TP.FLOAT, None)], ml_opset=5, **attrs)


@case("tree_ensemble_v5_sum_2t", "TreeEnsemble", "v5, two targets, SUM, NONE")
def _(rng):
    return _te5(rng)


@case("tree_ensemble_v5_average_1t", "TreeEnsemble", "v5, one target, AVERAGE, with a one-leaf tree")
def _(rng):
    return _te5(rng, targets=1, aggregate=0, leaf_tree=True)


@case("tree_ensemble_v5_min_2t", "TreeEnsemble", "v5, MIN")
def _(rng):
    return _te5(rng, aggregate=2)


@case("tree_ensemble_v5_max_2t", "TreeEnsemble", "v5, MAX")
def _(rng):
    return _te5(rng, aggregate=3)


@case("tree_ensemble_v5_member", "TreeEnsemble", "v5, BRANCH_MEMBER x1 in {1, 3}, NaN tracks true")
def _(rng):
    return _te5(rng, member=True, missing=[1, 0, 0])


for _pt in (1, 2, 3):
    case(f"tree_ensemble_v5_post{_pt}", "TreeEnsemble", f"v5, three targets, post_transform {_pt}")(
        lambda rng, p=_pt: _te5(rng, targets=3, post=p))


# ---------------------------------------------------------------- converted models
def _data(rng, n=40, f=4, classes=2):
    x = rng.standard_normal((n, f)).astype(np.float32)
    w = rng.standard_normal((f, classes))
    y = np.argmax(x @ w + 0.3 * rng.standard_normal((n, classes)), axis=1)
    return x, y


def _skl(est, x, target_opset=None, options=None):
    from skl2onnx import to_onnx
    opts = {id(est): {"zipmap": False}} if options is None else options
    kw = dict(target_opset=target_opset) if target_opset else {}
    try:
        return to_onnx(est, x[:1], options=opts, **kw)
    except Exception:
        return to_onnx(est, x[:1], **kw)


def _feeds(m, x):
    return {m.graph.input[0].name: x}


@case("sklearn_logistic_regression_binary", "LinearClassifier", "skl2onnx LogisticRegression, 2 classes")
def _(rng):
    from sklearn.linear_model import LogisticRegression
    x, y = _data(rng)
    m = _skl(LogisticRegression().fit(x, y), x)
    return m, _feeds(m, x[:6])


@case("sklearn_logistic_regression_3c", "LinearClassifier", "skl2onnx LogisticRegression, 3 classes, labels [2, 5, 9]")
def _(rng):
    from sklearn.linear_model import LogisticRegression
    x, y = _data(rng, classes=3)
    m = _skl(LogisticRegression().fit(x, np.array([2, 5, 9])[y]), x)
    return m, _feeds(m, x[:6])


@case("sklearn_pipeline_scaler_logistic", "LinearClassifier", "skl2onnx StandardScaler + LogisticRegression pipeline, 3 classes")
def _(rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x, y = _data(rng, classes=3)
    m = _skl(make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y), x,
             options={LogisticRegression: {"zipmap": False}})
    return m, _feeds(m, x[:6])


@case("sklearn_linear_regression", "LinearRegressor", "skl2onnx LinearRegression")
def _(rng):
    from sklearn.linear_model import LinearRegression
    x, y = _data(rng)
    m = _skl(LinearRegression().fit(x, x @ np.arange(1, 5) + 0.5), x, options={})
    return m, _feeds(m, x[:6])


@case("sklearn_svc_rbf_proba", "SVMClassifier", "skl2onnx SVC(probability=True), 3 classes")
def _(rng):
    from sklearn.svm import SVC
    x, y = _data(rng, classes=3)
    m = _skl(SVC(probability=True, random_state=0).fit(x, y), x)
    return m, _feeds(m, x[:6])


@case("sklearn_svc_poly_binary", "SVMClassifier", "skl2onnx SVC(kernel='poly'), 2 classes, no probabilities")
def _(rng):
    from sklearn.svm import SVC
    x, y = _data(rng)
    m = _skl(SVC(kernel="poly", degree=2).fit(x, y), x)
    return m, _feeds(m, x[:6])


@case("sklearn_svr_rbf", "SVMRegressor", "skl2onnx SVR")
def _(rng):
    from sklearn.svm import SVR
    x, _ = _data(rng)
    m = _skl(SVR().fit(x, np.sin(x[:, 0]) + x[:, 1]), x, options={})
    return m, _feeds(m, x[:6])


@case("sklearn_random_forest_binary", "TreeEnsembleClassifier", "skl2onnx RandomForestClassifier, labels [3, 7], 3 trees")
def _(rng):
    from sklearn.ensemble import RandomForestClassifier
    x, y = _data(rng)
    m = _skl(RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, np.array([3, 7])[y]), x,
             target_opset={"": 17, ML: 3})
    return m, _feeds(m, x[:8])


@case("sklearn_random_forest_3c", "TreeEnsembleClassifier", "skl2onnx RandomForestClassifier, 3 classes")
def _(rng):
    from sklearn.ensemble import RandomForestClassifier
    x, y = _data(rng, classes=3)
    m = _skl(RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, y), x,
             target_opset={"": 17, ML: 3})
    return m, _feeds(m, x[:8])


@case("sklearn_gradient_boosting_binary", "TreeEnsembleClassifier", "skl2onnx GradientBoostingClassifier, 2 classes")
def _(rng):
    from sklearn.ensemble import GradientBoostingClassifier
    x, y = _data(rng)
    m = _skl(GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(x, y), x,
             target_opset={"": 17, ML: 3})
    return m, _feeds(m, x[:8])


@case("sklearn_gradient_boosting_regressor", "TreeEnsembleRegressor", "skl2onnx GradientBoostingRegressor")
def _(rng):
    from sklearn.ensemble import GradientBoostingRegressor
    x, _ = _data(rng)
    m = _skl(GradientBoostingRegressor(n_estimators=4, max_depth=2, random_state=0).fit(x, x[:, 0] * 2 - x[:, 1]), x,
             target_opset={"": 17, ML: 3}, options={})
    return m, _feeds(m, x[:8])


@case("sklearn_random_forest_regressor_v5", "TreeEnsemble", "skl2onnx RandomForestRegressor at ml opset 5 (TreeEnsemble)")
def _(rng):
    from sklearn.ensemble import RandomForestRegressor
    x, _ = _data(rng)
    m = _skl(RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(x, x[:, 0] - x[:, 2]), x,
             target_opset={"": 21, ML: 5}, options={})
    return m, _feeds(m, x[:8])


@case("xgboost_binary", "TreeEnsembleClassifier", "onnxmltools XGBClassifier, 2 classes, 3 trees")
def _(rng):
    import xgboost
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    x, y = _data(rng)
    est = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y)
    m = convert_xgboost(est, initial_types=[("X", FloatTensorType([None, x.shape[1]]))], target_opset=15)
    return _drop_zipmap(m), {"X": x[:8]}


@case("xgboost_3c", "TreeEnsembleClassifier", "onnxmltools XGBClassifier, 3 classes")
def _(rng):
    import xgboost
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    x, y = _data(rng, classes=3)
    est = xgboost.XGBClassifier(n_estimators=2, max_depth=2).fit(x, y)
    m = convert_xgboost(est, initial_types=[("X", FloatTensorType([None, x.shape[1]]))], target_opset=15)
    return _drop_zipmap(m), {"X": x[:8]}


@case("xgboost_regressor", "TreeEnsembleRegressor", "onnxmltools XGBRegressor")
def _(rng):
    import xgboost
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    x, _ = _data(rng)
    est = xgboost.XGBRegressor(n_estimators=3, max_depth=2).fit(x, x[:, 0] + x[:, 1] ** 2)
    m = convert_xgboost(est, initial_types=[("X", FloatTensorType([None, x.shape[1]]))], target_opset=15)
    return m, {"X": x[:8]}


@case("lightgbm_binary", "TreeEnsembleClassifier", "onnxmltools LGBMClassifier, 2 classes")
def _(rng):
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    x, y = _data(rng, n=80)
    est = lightgbm.LGBMClassifier(n_estimators=3, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, y)
    m = convert_lightgbm(est, initial_types=[("X", FloatTensorType([None, x.shape[1]]))], target_opset=15, zipmap=False)
    return m, {"X": x[:8]}


@case("lightgbm_3c", "TreeEnsembleClassifier", "onnxmltools LGBMClassifier, 3 classes")
def _(rng):
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    x, y = _data(rng, n=90, classes=3)
    est = lightgbm.LGBMClassifier(n_estimators=2, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, y)
    m = convert_lightgbm(est, initial_types=[("X", FloatTensorType([None, x.shape[1]]))], target_opset=15, zipmap=False)
    return m, {"X": x[:8]}


@case("lightgbm_regressor", "TreeEnsembleRegressor", "onnxmltools LGBMRegressor")
def _(rng):
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    x, _ = _data(rng, n=80)
    est = lightgbm.LGBMRegressor(n_estimators=3, num_leaves=4, min_child_samples=5, verbose=-1).fit(x, x[:, 0] - x[:, 3])
    m = convert_lightgbm(est, initial_types=[("X", FloatTensorType([None, x.shape[1]]))], target_opset=15)
    return m, {"X": x[:8]}


def _drop_zipmap(m):
    """Remove a trailing ZipMap: its input becomes the graph output (as the engine's loader does)."""
    g = m.graph
    for node in list(g.node):
        if node.op_type == "ZipMap":
            src = node.input[0]
            for o in list(g.output):
                if o.name == node.output[0]:
                    g.output.remove(o)
            g.node.remove(node)
            if not any(o.name == src for o in g.output):
                g.output.append(helper.make_tensor_value_info(src, TP.FLOAT, None))
    return m


# ---------------------------------------------------------------- ONNX backend node tests
def onnx_node_cases():
    """ONNX's ai.onnx.ml node tests whose inputs and outputs are numeric (the string LabelEncoder
    cases are not: the engine has no string tensors)."""
    from onnx.backend.test.case.node import collect_testcases
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tests = collect_testcases(None)
    for t in tests:
        if not any(n.domain == ML for n in t.model.graph.node):
            continue
        types = [v.type.tensor_type.elem_type for v in list(t.model.graph.input) + list(t.model.graph.output)]
        if TP.STRING in types:
            continue
        inputs, outputs = t.data_sets[0]
        out.append((t.name, t.model, inputs, outputs))
    return out


# ---------------------------------------------------------------- driver
def ort_run(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def reorder_outputs(model):
    """Float outputs first ("probabilities"/"output_probability" first among them); returns the
    numeric output names in the new order."""
    outs = list(model.graph.output)
    elem = lambda o: o.type.tensor_type.elem_type  # noqa: E731
    rank = lambda o: (0 if elem(o) in (TP.FLOAT, TP.DOUBLE) and o.name in ("probabilities", "output_probability")  # noqa: E731
                      else 1 if elem(o) in (TP.FLOAT, TP.DOUBLE) else 2)
    outs.sort(key=rank)
    del model.graph.output[:]
    model.graph.output.extend(outs)
    return [o.name for o in outs if o.type.HasField("tensor_type") and elem(o) != TP.STRING]


def write_case(out_dir, name, op, note, model, feeds, expected=None):
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    numeric = reorder_outputs(model)
    got = ort_run(model, feeds)
    if expected is not None:
        for k, (o, want) in enumerate(zip(model.graph.output, expected)):
            if not np.allclose(got[o.name], want, rtol=1e-5, atol=1e-6, equal_nan=True):
                raise SystemExit(f"{name}: onnxruntime output {o.name} differs from the node test's expected output")
    onnx.save(model, os.path.join(case_dir, "model.onnx"))
    input_names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    for k, n in enumerate(input_names):
        np.save(os.path.join(case_dir, f"input_{k}.npy"), feeds[n])
    for k, n in enumerate(numeric):
        arr = np.asarray(got[n])
        if arr.dtype == np.int32:
            arr = arr.astype(np.int64)
        np.save(os.path.join(case_dir, f"output_{k}.npy"), arr)
    return {"name": name, "op": op, "inputs": len(input_names), "outputs": len(numeric), "grads": [], "seeds": [],
            "input_names": input_names, "input_dtypes": [str(np.asarray(feeds[n]).dtype) for n in input_names],
            "output_names": numeric, "note": note}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write the ai.onnx.ml op fixtures.")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "engine", "ops_ml"))
    args = ap.parse_args(argv)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    entries = []
    for i, (name, op, note, fn) in enumerate(CASES):
        rng = np.random.default_rng(2000 + i)
        model, feeds = fn(rng)
        entries.append(write_case(args.out, name, op, note, model, feeds))
    for name, model, inputs, outputs in onnx_node_cases():
        feeds = {i.name: a for i, a in zip(model.graph.input, inputs)}
        op = next(n.op_type for n in model.graph.node if n.domain == ML)
        entries.append(write_case(args.out, f"onnx_node_{name[5:]}", op,
                                  f"ONNX backend node test {name} (onnx {onnx.__version__})", model, feeds, outputs))
    with open(os.path.join(args.out, "cases.json"), "w") as fh:
        json.dump(entries, fh, indent=1)
        fh.write("\n")
    with open(os.path.join(args.out, "README.md"), "w") as fh:
        fh.write("# ai.onnx.ml op fixtures\n\nGenerated by `tools/ml_goldens.py` (onnxruntime "
                 f"{ort.__version__}, onnx {onnx.__version__}); its docstring, verbatim:\n\n```\n"
                 + __doc__.strip() + "\n```\n")
    ops = sorted({e["op"] for e in entries})
    print(f"wrote {len(entries)} cases under {args.out} covering {len(ops)} ops: {', '.join(ops)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
