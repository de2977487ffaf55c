# dfseg: every target depends on `setup`, which builds .venv and the Caffe schema module.
SHELL := /bin/bash
# Debian's interpreter, not the pyenv shim: pycaffe is built against it (see caffe/).
SYSTEM_PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
SCHEMA := prototxt_gen/caffe_pb2.py
PATCHED_PROTO := build/proto/caffe.proto
# Set-up and the Caffe build say what they do in one line per step and keep the whole output
# here (mk/logged.sh: a failed step shows its last lines; DFSEG_VERBOSE=1 shows everything).
LOGS := build/logs
STEP := bash mk/logged.sh
# The official Cityscapes evaluator, for the tests' cross-check against ours: without its
# declared dependencies, which pull in the obsolete `typing` backport and `requests`.
CITYSCAPES_SCRIPTS := cityscapesscripts==2.3.0 pyquaternion coloredlogs humanfriendly appdirs

# The model registry is the YAML under caffe_models/ (prototxt_gen.models reads the same files):
# the DF models in caffe_models/*.yaml,
DF_MODELS := $(basename $(notdir $(wildcard caffe_models/*.yaml)))
# the paper's comparison nets in caffe_models/zoo/*.yaml (deploy and caffetime forms).
ZOO_MODELS := $(basename $(notdir $(wildcard caffe_models/zoo/*.yaml)))
MODELS := $(DF_MODELS) $(ZOO_MODELS)

.PHONY: setup test models $(MODELS) clean
.DEFAULT_GOAL := df1seg

setup: $(VENV_STAMP) $(SCHEMA)

# Exactly this torch first: the project's machines hold its CPU build, and a looser spec
# would download a CUDA build of several GB (a GPU user: see README, "PyTorch").
$(VENV_STAMP): pyproject.toml Makefile
	@$(STEP) --new $(LOGS)/setup.log "setup: creating $(VENV) from $(SYSTEM_PYTHON) (log: $(LOGS)/setup.log)" \
	  $(SYSTEM_PYTHON) -m venv $(VENV)
	@$(STEP) $(LOGS)/setup.log "setup: upgrading pip (seconds)" $(PY) -m pip install --upgrade pip
	@$(STEP) $(LOGS)/setup.log "setup: installing PyTorch $(TORCH_VERSION) (pip; a few minutes on a first run)" \
	  $(PY) -m pip install torch==$(TORCH_VERSION)
	@$(STEP) $(LOGS)/setup.log "setup: installing dfseg and its Python dependencies (pip; 1-3 min on a first run)" \
	  $(PY) -m pip install -e '.[test]'
	@$(STEP) $(LOGS)/setup.log "setup: installing cityscapesScripts, the official evaluator the tests check against (seconds)" \
	  $(PY) -m pip install --no-deps $(CITYSCAPES_SCRIPTS)
	@touch $@

$(PATCHED_PROTO): caffe/fetch_source.sh caffe/patches/caffe-proto-pop-fork.patch
	@$(STEP) --new $(LOGS)/schema.log "setup: fetching Caffe's Debian source package for its schema (apt; under a minute; log: $(LOGS)/schema.log)" \
	  bash caffe/fetch_source.sh build/caffe-src
	@mkdir -p $(dir $@)
	@cp build/caffe-src/src/caffe/proto/caffe.proto $@
	@patch -s -p4 -d $(dir $@) < caffe/patches/caffe-proto-pop-fork.patch

$(SCHEMA): $(PATCHED_PROTO) $(VENV_STAMP)
	@$(STEP) $(LOGS)/schema.log "setup: compiling the Caffe schema into $@ (seconds)" \
	  $(PY) -m grpc_tools.protoc -I$(dir $(PATCHED_PROTO)) --python_out=$(dir $@) $(PATCHED_PROTO)

test: setup
	$(PY) -m pytest -q

# Every form of one named model into caffe_models/<model>/, then its analysis table
# (params, MACs, Caffe's memory for data) at the model's test size (1024x2048 for DF-Seg,
# 224x224 for the comparison backbones): the merged-BN deploy net, or the deploy net of a
# model without BatchNorm (GoogLeNet).
define generate_and_analyze
	$(PY) -m prototxt_gen $@ --out caffe_models/$@
	net=caffe_models/$@/$@_deploy_mergebn.prototxt; test -f $$net || net=caffe_models/$@/$@_deploy.prototxt; \
	  $(PY) -m tools.analyze $$net
endef

$(filter-out df1seg,$(MODELS)): setup
	$(generate_and_analyze)

# The main job: DF1-Seg in every form, its analysis at 1024x2048, then a measured FPS in
# real Caffe (`caffe time`, merged BN, 1024x2048) beside the paper's Titan X figure and
# ICNet's, the head-to-head baseline, timed in interleaved rounds on one thread; prints the
# DF1-Seg/ICNet ratio with its 95 % interval (docs/measurement.md).  DF1SEG_ITERATIONS keeps
# it short on a CPU (the paper used 100: `make bench`).
DF1SEG_ITERATIONS ?= 10
DF1SEG_ROUNDS ?= 5
df1seg: setup caffe
	$(generate_and_analyze)
	$(PY) -m tools.bench --models df1seg,icnet --iterations $(DF1SEG_ITERATIONS) \
	  --rounds $(DF1SEG_ROUNDS) --threads 1 --no-table4 --opencv-iterations 2 --out bench/df1seg

# Every named model, and the authors' release set under its own file names.
models: setup
	for m in $(MODELS); do $(PY) -m prototxt_gen $$m --out caffe_models/$$m || exit $$?; done
	$(PY) -m prototxt_gen --release-set --out caffe_models/release

clean:
	rm -rf build $(SCHEMA)

-include mk/*.mk
