# Real Caffe for dfseg (see docs/caffe.md): CPU build with the Interp layer and the POP
# fork's schema, cached under ~/.cache/dfseg/caffe/<key> and linked at build/caffe.
.PHONY: caffe

# caffe/build.sh is a quick no-op when the cached install for the current sources exists;
# a build says what it does in a few lines and keeps its output in build/logs/caffe-build.log.
caffe: setup
	@bash caffe/build.sh build/caffe

# The Caffe-backed tests must run, never skip, wherever `make test` runs.
test: caffe

# Head-to-head benchmark (tools/bench.py): bench/results.json, bench/results.md, bench/fps.png.
# The defaults follow the paper (100 iterations at 1024x2048) and take hours on a 2-core CPU;
# e.g. `make bench BENCH_ARGS="--iterations 5 --table4-iterations 2"` for a quick look.
BENCH_ARGS ?=
.PHONY: bench
bench: caffe
	$(PY) -m tools.bench $(BENCH_ARGS)
