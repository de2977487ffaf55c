# POP search engine (issue 4).
.PHONY: bench-pop test-pop

# Does pruning pay? LUT measured here (caffe if built, else OpenCV DNN), surrogate accuracy,
# POP vs random vs NSGA-II: writes bench/pop.json (+ bench/pop_details.json); then the same at
# growing order-violation levels (pop/robustness.py, the measured level from
# pop/measured_order.json): bench/pop_details.json -> robustness, bench/pop_robustness.png.
# Both comparisons run the one search loop of pop/search_loop.py; the robustness searches run
# over one process per core (--jobs). About 1 h 10 min on 2 cores, most of it Optuna's TPE.
bench-pop: setup
	$(PY) -m pop.bench --seeds 5

test-pop: setup
	$(PY) -m pytest -q tests/test_pop_*.py

# The table of real trainings that `make bench-pop` replays (issue 24): every model of the POP
# demo's space (125) trained with the package's trainer under seeds 0 and 1, latency from a
# Caffe LUT measured here.  Hours on 2 cores; resumable (run it again and it goes on); the
# output in bench/pop_table/ is committed as data.  The LUT is measured once: the table's
# latencies stay those of the machine that trained it.
POP_TABLE ?= bench/pop_table
POP_TABLE_WORK ?= build/pop-table
.PHONY: pop-table
pop-table: setup caffe
	$(PY) -m solvers.pop_demo prepare $(POP_TABLE_WORK) > /dev/null
	mkdir -p $(POP_TABLE)
	test -f $(POP_TABLE)/lut.json || $(PY) -m pop lut build --space $(POP_TABLE_WORK)/space.yaml \
	  --lut $(POP_TABLE)/lut.json --backend caffe --threads 1
	$(PY) -m solvers.pop_table --task $(POP_TABLE_WORK)/task.yaml --space $(POP_TABLE_WORK)/space.yaml \
	  --lut $(POP_TABLE)/lut.json --out $(POP_TABLE) --workdir $(POP_TABLE_WORK)/runs --seeds 0 1 --workers 2

# The distributed search under load and faults (issue 23): a real PostgreSQL server installed
# (apt, as root) and started on loopback, a role with a password in the URL, 8 `pop worker`s
# on one study (>= 2,000 surrogate trainings of 30 ms), SIGKILLs every 3-6 s, the server
# stopped for 15 s, the work dir's tmpfs filled for 8 s; then exactly once, the boundary of a
# one-worker run, no traceback, no password in any output: bench/distributed.json.
.PHONY: bench-distributed
bench-distributed: setup
	$(PY) -m pop.bench_distributed
