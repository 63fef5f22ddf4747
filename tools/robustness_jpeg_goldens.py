"""Goldens for the jpeg_compression corruption (tests/robustness/test_corruptions.cpp).

CIFAR-10-C's jpeg_compression (Hendrycks & Dietterich 2019, make_cifar_c.py) saves the image with
PIL at quality c = 80, 65, 58, 50, 40 for severities 1..5 and reloads it. This script does exactly
that with Pillow (its own bundled libjpeg-turbo, independent of mlaudit's Debian libjpeg) on
  - the first 4 demo Fashion-MNIST images (grayscale, 28x28), and
  - 2 seeded random RGB images 3x20x24 (odd chroma blocks, 4:2:0 subsampling),
and writes these .npy files to tests/fixtures/robustness/:
  jpeg_gray_in.npy [4,1,28,28], jpeg_gray_out.npy [5,4,1,28,28],
  jpeg_rgb_in.npy  [2,3,20,24], jpeg_rgb_out.npy  [5,2,3,20,24]  (float32 in [0,1]).
Run: ${PYTHON:-.venv/bin/python} tools/robustness_jpeg_goldens.py
"""
import io
import os

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "robustness")
QUALITY = [80, 65, 58, 50, 40]


def roundtrip(img_u8, mode, q):
    buf = io.BytesIO()
    Image.fromarray(img_u8, mode=mode).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(mode))


def main():
    gray = np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy"))[:4].astype(np.float32)
    rng = np.random.default_rng(3)
    rgb = rng.random((2, 3, 20, 24)).astype(np.float32)
    rgb[:, :, 5:15, 6:18] *= 0.3  # some structure
    outs = {"gray": [], "rgb": []}
    for q in QUALITY:
        g = []
        for im in gray:
            u8 = np.rint(np.clip(im[0], 0, 1) * 255).astype(np.uint8)
            g.append(roundtrip(u8, "L", q)[None].astype(np.float32) / 255.0)
        outs["gray"].append(np.stack(g))
        r = []
        for im in rgb:
            u8 = np.rint(np.clip(im.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
            r.append(roundtrip(u8, "RGB", q).transpose(2, 0, 1).astype(np.float32) / 255.0)
        outs["rgb"].append(np.stack(r))
    np.save(os.path.join(OUT, "jpeg_gray_in.npy"), gray)
    np.save(os.path.join(OUT, "jpeg_gray_out.npy"), np.stack(outs["gray"]).astype(np.float32))
    np.save(os.path.join(OUT, "jpeg_rgb_in.npy"), rgb)
    np.save(os.path.join(OUT, "jpeg_rgb_out.npy"), np.stack(outs["rgb"]).astype(np.float32))
    print("wrote jpeg goldens to", OUT)


if __name__ == "__main__":
    main()
