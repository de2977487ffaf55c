# POP search engine (issue 4).
.PHONY: bench-pop test-pop

# Does pruning pay? LUT measured here (caffe if built, else OpenCV DNN), surrogate accuracy,
# POP vs random vs NSGA-II: writes bench/pop.json (+ bench/pop_details.json); then the same at
# growing order-violation levels (pop/robustness.py, the measured level from
# pop/measured_order.json): bench/pop_details.json -> robustness, bench/pop_robustness.png.
# Both comparisons run the one search loop of pop/search_loop.py.
bench-pop: setup
	$(PY) -m pop.bench --seeds 5

test-pop: setup
	$(PY) -m pytest -q tests/test_pop_*.py
