# The paper's comparison tables measured here (tools/paper_bench.py): Table 1 (224x224) and
# Table 4 (640x360, 1280x720, 1920x1080, WxH as the paper) on caffe time, OpenCV DNN and ONNX
# Runtime, 1 thread, interleaved rounds.  The quick form below takes about 20-30 min on 2 cores
# (SegNet at 1920x1080 dominates); PAPER_BENCH_ARGS="--iterations 100 --table4-iterations 10"
# for the paper's setting.  `make tables` then shows bench/paper.json beside the paper.
PAPER_BENCH_ARGS ?=
.PHONY: bench-paper
bench-paper: caffe
	$(PY) -m tools.paper_bench --out bench/paper.json $(PAPER_BENCH_ARGS)
