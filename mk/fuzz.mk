# Property-based fuzzing of the command-line entry points (tests/test_fuzz_cli.py, hypothesis):
# generated encodings, mutated and truncated prototxts, Caffe logs and caffemodels.  Every call
# must exit 0 or 2 with one line, never a traceback.  `make test` runs a small fixed slice
# (30 per entry point); `make fuzz` runs FUZZ_EXAMPLES in all (random each run) and writes the
# counts, refusals and seconds to bench/fuzz.json.
FUZZ_EXAMPLES ?= 12000

.PHONY: fuzz
fuzz: setup
	mkdir -p bench
	DFSEG_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) DFSEG_FUZZ_REPORT=bench/fuzz.json \
	  $(PY) -m pytest -q -s -p no:cacheprovider tests/test_fuzz_cli.py
