# The README's commands: `make demo` runs the main job end to end, `make test` runs every test.
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/bin:$(PATH)
export MINIO_BIN := $(CURDIR)/.tools/bin/minio

GO ?= go
TEST_TIMEOUT ?= 40m
# Fuzz budgets are counts of inputs, not durations: Go 1.26's fuzzer can
# fail a duration run with "context deadline exceeded" as the time runs out
# (golang/go#75804, fixed in Go 1.27). About 10 s each on this machine.
FUZZ_PARSE_EXECS ?= 150000x
FUZZ_MANIFEST_EXECS ?= 10000x
FUZZ_IMPORT_EXECS ?= 5000x
FUZZ_MERGE_EXECS ?= 5000x
FUZZ_VERIFY_EXECS ?= 50000x

.PHONY: build test deps vet fuzz demo bench image

build:
	$(GO) build -o bin/s3cache ./cmd/s3cache

# The main job end to end: MinIO, build with --cache-to, wipe, rebuild from the bucket.
demo: build
	scripts/install-test-deps.sh --minio-only
	$(GO) run ./demo

# The s3cache BuildKit image for buildx's drivers, built offline with
# s3cache build: bin/s3cache-image.tar, named $(IMAGE) (docs/deploy.md).
IMAGE ?= s3cache:dev
image: build
	IMAGE=$(IMAGE) scripts/make-image.sh

deps:
	scripts/install-test-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# Brief runs of the fuzz targets; their corpora in testdata/ also run in plain go test.
fuzz:
	$(GO) test ./spec -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_PARSE_EXECS)
	$(GO) test ./manifest -run '^$$' -fuzz '^FuzzDecodeManifest$$' -fuzztime $(FUZZ_MANIFEST_EXECS)
	$(GO) test ./backend -run '^$$' -fuzz '^FuzzImport$$' -fuzztime $(FUZZ_IMPORT_EXECS)
	$(GO) test ./manifest -run '^$$' -fuzz '^FuzzMerge$$' -fuzztime $(FUZZ_MERGE_EXECS)
	$(GO) test ./signature -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZ_VERIFY_EXECS)

test: deps vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) fuzz

# ls, du, verify and prune timed on a MinIO bucket of 20,000 blobs and 200
# manifests, with their S3 request counts; results in bench/bucketops.md.
.PHONY: bench-bucket
bench-bucket:
	scripts/install-test-deps.sh --minio-only
	$(GO) run ./bench/bucketops

# Ours against upstream buildkitd on one MinIO, side by side; writes
# bench/results.md. BENCH_QUICK=1 runs a small smoke variant instead.
bench: build
	scripts/install-test-deps.sh
	$(GO) run ./bench
