# Front door: `make` builds build/mlaudit, `make test` runs the suite, `make demo` runs the bundled audit.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all build deps configure test demo sanitize fuzz bench clean install package

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: deps
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE slow

demo: deps
	$(MAKE) build
	bash scripts/demo.sh $(BUILD)

sanitize: deps
	$(MAKE) BUILD=build-sanitize CMAKE_FLAGS="-DMLAUDIT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLAUDIT_WITH_CUDA=OFF" build
	cd build-sanitize && ASAN_OPTIONS=detect_leaks=0 MLAUDIT_TEST_TIME_SCALE=10 ctest --output-on-failure -j$(JOBS) -LE "slow|chromium"

# libFuzzer targets (clang, ASan+UBSan) in build-fuzz; run them with scripts/fuzz.sh SECONDS (docs/dev/fuzzing.md).
fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DMLAUDIT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLAUDIT_WITH_CUDA=OFF
	cmake --build build-fuzz -j$(JOBS) --target mlaudit_fuzzers

bench: build
	bash bench/run_all.sh $(BUILD)

# `make install PREFIX=DIR` (DESTDIR honoured): bin/mlaudit, its man page and bash/zsh completion
# (generated from the option tables --help prints) and the docs; builds only what it installs.
PREFIX ?= /usr/local
install: configure
	cmake --build $(BUILD) -j$(JOBS) --target mlaudit mlaudit_docs
	cmake --install $(BUILD) --prefix $(PREFIX)

# `make package`: $(BUILD)/mlaudit_<version>_amd64.deb, made by CPack from a CPU-only build: $(BUILD)
# itself when it was configured without CUDA and MPI, else a second build in $(PKG_BUILD) (a CUDA
# build links the CUDA toolkit's cuBLAS/cuRAND, which no Debian package provides; --mpi would
# make every install pull in Open MPI). Depends are the
# Debian libraries the binary links (dpkg-shlibdeps). docs/install.md.
PKG_BUILD ?= $(shell grep -qx 'MLAUDIT_CUDA_BUILT:INTERNAL=OFF' $(BUILD)/CMakeCache.txt 2>/dev/null && grep -qx 'MLAUDIT_MPI_BUILT:INTERNAL=OFF' $(BUILD)/CMakeCache.txt && echo $(BUILD) || echo build-package)
package: deps
	@if [ "$(PKG_BUILD)" != "$(BUILD)" ]; then \
	  cmake -S . -B $(PKG_BUILD) -DCMAKE_BUILD_TYPE=Release -DMLAUDIT_WITH_CUDA=OFF -DMLAUDIT_WITH_MPI=OFF -DMLAUDIT_WITH_PYTHON=OFF $(CMAKE_FLAGS); \
	else echo "package: $(BUILD) has no CUDA backend, packaging it"; fi
	cmake --build $(PKG_BUILD) -j$(JOBS) --target mlaudit mlaudit_docs
	rm -f $(PKG_BUILD)/mlaudit_*.deb
	cd $(PKG_BUILD) && cpack -G DEB
	@if [ "$(PKG_BUILD)" != "$(BUILD)" ]; then mkdir -p $(BUILD) && cp $(PKG_BUILD)/mlaudit_*_amd64.deb $(BUILD)/; fi
	@ls $(BUILD)/mlaudit_*_amd64.deb

clean:
	rm -rf $(BUILD) build-sanitize build-package
