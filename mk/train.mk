# Training side (solvers/, tools/lmdb_tools.py, tools/cityscapes_data.py): pycaffe runs.
# `caffe` below is the Caffe build's target (mk/caffe.mk); without that rule make takes the
# caffe/ source folder as up to date, so these targets still parse.
.PHONY: pop-demo seg-smoke train-test

POP_DEMO ?= build/pop-demo
POP_DEMO_BUDGET ?= 32
POP_DEMO_PATIENCE ?= 10
POP_DEMO_ENV = DFSEG_POP_TASK=$(POP_DEMO)/task.yaml OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# A real POP search on this machine: digits data, DF-style space scaled to 32x32 inputs,
# this CPU's Caffe latency LUT, real pycaffe training by two workers (one per core).
pop-demo: setup caffe
	$(PY) -m solvers.pop_demo prepare $(POP_DEMO)
	$(PY) -m pop lut build --space $(POP_DEMO)/space.yaml --lut $(POP_DEMO)/lut.json --backend caffe --threads 1
	rm -f $(POP_DEMO)/pop.db
	( for i in 1 2 3 4 5 6 7 8 9 10; do sleep 3; \
	    $(POP_DEMO_ENV) $(PY) -m pop worker --storage sqlite:///$(POP_DEMO)/pop.db --study digits \
	      --workdir $(POP_DEMO)/runs --quiet > $(POP_DEMO)/worker2.log 2>&1 && break; done ) & \
	$(POP_DEMO_ENV) $(PY) -m pop search --space $(POP_DEMO)/space.yaml --lut $(POP_DEMO)/lut.json \
	  --evaluator solvers.pop_evaluator:CaffeEvaluator --storage sqlite:///$(POP_DEMO)/pop.db --study digits \
	  --workdir $(POP_DEMO)/runs --patience $(POP_DEMO_PATIENCE) --budget $(POP_DEMO_BUDGET); \
	status=$$?; wait; exit $$status
	$(PY) -m pop report --storage sqlite:///$(POP_DEMO)/pop.db --study digits --out $(POP_DEMO)/report
	$(POP_DEMO_ENV) $(PY) -m solvers.pop_demo seed-noise $(POP_DEMO)/runs --task $(POP_DEMO)/task.yaml \
	  --out $(POP_DEMO)/report --models 4
	$(PY) -m solvers.pop_demo order-check $(POP_DEMO)/runs --out $(POP_DEMO)/report

# DF-Seg on a generated data set in the Cityscapes layout: loss falls, mIoU by the evaluator.
seg-smoke: setup caffe
	rm -rf build/seg-smoke
	OPENBLAS_NUM_THREADS=2 $(PY) -m solvers.seg_smoke build/seg-smoke --iterations 150

train-test: setup caffe
	$(PY) -m pytest -q tests/test_train_*.py
