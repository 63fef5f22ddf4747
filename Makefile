# Front door: `make` builds build/mlaudit, `make test` runs the suite, `make demo` runs the bundled audit.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all build deps configure test demo sanitize fuzz bench clean

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
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE "slow|cuda-only"

demo: deps
	$(MAKE) build
	bash scripts/demo.sh $(BUILD)

sanitize: deps
	$(MAKE) BUILD=build-sanitize CMAKE_FLAGS="-DMLAUDIT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLAUDIT_WITH_CUDA=OFF" build
	cd build-sanitize && ASAN_OPTIONS=detect_leaks=0 MLAUDIT_TEST_TIME_SCALE=10 ctest --output-on-failure -j$(JOBS) -LE "slow|cuda-only|chromium|nosan"

# libFuzzer targets (clang, ASan+UBSan) in build-fuzz; run them with scripts/fuzz.sh SECONDS (docs/fuzzing.md).
fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DMLAUDIT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLAUDIT_WITH_CUDA=OFF
	cmake --build build-fuzz -j$(JOBS) --target mlaudit_fuzzers

bench: build
	bash bench/run_all.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-sanitize
