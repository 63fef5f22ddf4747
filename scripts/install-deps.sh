#!/usr/bin/env bash
# Installs every Debian package that mlaudit's build, tests and demo need.
# Idempotent: packages already present are skipped; sudo is used only when not root.
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config
  libeigen3-dev            # dense linear algebra (engine, verify)
  libz3-dev                # exact SMT backend (verify)
  libboost-program-options-dev libboost-math-dev   # CLI parsing; Clopper-Pearson / normal quantiles
  libfmt-dev               # formatting
  libdnnl-dev              # oneDNN: conv/gemm/pooling primitives (engine CPU backend)
  catch2                   # unit tests
  libonnx-dev libprotobuf-dev protobuf-compiler   # ONNX model loading
  nlohmann-json3-dev       # JSON reports
  libyaml-cpp-dev          # audit config
  libpng-dev zlib1g-dev    # heatmaps; gzipped IDX
  libjpeg-dev              # jpeg_compression corruption (libjpeg-turbo)
  dataset-fashion-mnist    # bundled image dataset
  chromium                 # report.pdf (print-to-pdf) and the HTML report's browser test
  poppler-utils            # the browser test's PDF checks (pdfinfo, pdftotext, pdftoppm)
  clang libclang-rt-14-dev # make fuzz: libFuzzer targets with ASan+UBSan (fuzz/, docs/dev/fuzzing.md)
  dpkg-dev file            # make package: CPack's DEB generator (dpkg-shlibdeps finds Depends; file spots ELF files)
  groff-base zsh           # packaging tests: the man page renders (groff), the zsh completion parses (zsh -n)
  python3-dev pybind11-dev python3-numpy python3-pytest   # the Python module (python/, docs/python.md) and its tests
  python3-jsonschema python3-yaml   # packaging.ci_schemas: action.yml and the GitLab template against their schemas
  libopenmpi-dev openmpi-bin   # mlaudit --mpi under mpirun (optional at build time; docs/scale-out.md)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
