# ONNX export and engine benchmarks (tools/to_onnx.py, tools/ort_bench.py, tools/tensorrt_bench.py).
.PHONY: bench-ort bench-tensorrt

ORT_BENCH_ARGS ?=
TRT_BENCH_ARGS ?=

# ONNX Runtime CPU latency of every DF-Seg model and ICNet at 640x360, 1280x720, 1920x1080
# and 1024x2048 (random weights): bench/onnxruntime.json + .png, table on stdout.
bench-ort: setup
	$(PY) -m tools.ort_bench --out bench/onnxruntime.json $(ORT_BENCH_ARGS)

# TensorRT FP32/FP16 engines, per-layer profiles in the release's log format and CUDA-event
# end-to-end latency (bench/tensorrt.json, bench/tensorrt_profiles/); needs the `tensorrt`
# and `cuda-python` wheels and an NVIDIA GPU.
bench-tensorrt: setup
	$(PY) -m tools.tensorrt_bench --out-dir bench $(TRT_BENCH_ARGS)
