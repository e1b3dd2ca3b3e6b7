# The front door. `make bench` runs the benchmark (the main job); `make test`
# builds and runs every test, then the whole suite again under ASan + UBSan.
# `make example` runs the echo examples; `make compare` runs bench/compare,
# `make compare-servers` and `make compare-clients` bench/compare-side (one
# side alone against the baseline's other side), `make compare-redis`
# bench/compare-redis (ctower bench and redis-benchmark against redis-server),
# `make compare-proxy` bench/compare-proxy (ctower proxy and twemproxy),
# `make proxy-cost` bench/proxy-cost (instructions per request of the proxy's stacks),
# `make share-bench` bench/share_bench.c (calls through the share layer, across threads),
# `make tls-cost` bench/tls-cost (ctower bench plain and with TLS, side by side),
# `make compare-http` bench/compare-http (ctower serve --codec http and nginx),
# `make hostile` bench/hostile (the hostile suite's attacks on ctower serve, nginx and h2o).
# `make docs` the API reference from the headers (doxygen), in $(BUILD)/docs/html.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
CMAKE_ARGS ?=

.PHONY: docs all deps build bench compare compare-servers compare-clients compare-redis compare-proxy compare-http compare-http2 proxy-cost share-bench tls-cost hostile example test test-plain test-asan fuzz-long install format clean

all: build

docs: deps
	tests/docs/check.sh $(CURDIR) $(CURDIR)/$(BUILD)/docs

deps:
	@./scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_ARGS) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

bench: build
	./$(BUILD)/ctower bench $(BENCH_ARGS)

compare: build
	bench/compare $(BUILD)

compare-servers: build
	bench/compare-side server $(BUILD)

compare-clients: build
	bench/compare-side client $(BUILD)

compare-redis: build
	bench/compare-redis $(BUILD)

compare-proxy: build
	bench/compare-proxy $(BUILD)

compare-http: build
	bench/compare-http $(BUILD)

compare-http2: build
	bench/compare-http2 $(BUILD)

proxy-cost: build
	bench/proxy-cost $(BUILD)

hostile: build
	bench/hostile $(BUILD)

tls-cost: build
	bench/tls-cost $(BUILD)

share-bench: build
	./$(BUILD)/share_bench 1 3 64
	./$(BUILD)/share_bench 1 3 1024

example: build
	./$(BUILD)/examples/echo_channel
	./$(BUILD)/examples/echo_multiplex
	./$(BUILD)/examples/echo_tcp
	./$(BUILD)/examples/echo_tls
	./$(BUILD)/examples/echo_threads
	./$(BUILD)/examples/http
	./$(BUILD)/examples/http2
	./$(BUILD)/examples/reconnect
	./$(BUILD)/examples/balance
	./$(BUILD)/examples/share_threads

test: test-plain test-asan

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCTOWER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# Each codec's fuzz target for 10M executions (not part of `make test`):
# about 35 minutes on one core, half that with JOBS=2. FUZZ_RUNS overrides the count.
FUZZ_RUNS ?= 10000000
fuzz-long:
	RUNS=$(FUZZ_RUNS) JOBS=$(JOBS) TARGETS="fuzz_codec fuzz_http fuzz_http_filter fuzz_http2" \
	  tests/fuzz/run.sh $(CURDIR) $(CURDIR)/$(BUILD)/fuzz-long

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cpp')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
