# The paper's comparison measured here (tools/paper_bench.py): Table 1 (224x224), Table 3
# (1024x2048; BiSeNet 768x1536), Table 4 (640x360, 1280x720, 1920x1080) and Table 5 (480x320,
# 640x360, 1280x720; WxH as the paper) and every net of Fig. 1 at the size of its published FPS,
# on caffe time, OpenCV DNN and ONNX Runtime, 1 thread, interleaved rounds.  A net that does not
# fit this machine (memory, or --max-net-seconds of estimated passes) is not run and its row
# says why (docs/tables.md).  The default took 22 min on 2 cores (PSPNet-101, DeepLab-v2
# and SegNet at their largest sizes dominate); `PAPER_BENCH_ARGS=--plan` prints the plan and the
# estimate; PAPER_BENCH_ARGS="--iterations 100 --table4-iterations 10" for the paper's setting.
# `make tables` then shows bench/paper.json beside the paper (and bench/tables/fig1.png).
PAPER_BENCH_ARGS ?=
.PHONY: bench-paper
bench-paper: caffe
	$(PY) -m tools.paper_bench --out bench/paper.json $(PAPER_BENCH_ARGS)
