# Network analysis (see docs/analysis.md).
#   make analyze NET=file.prototxt [INPUT=1x3x1024x2048] [PHASE=TRAIN|TEST]   table of any net / Caffe log
#   make analysis          caffe-time net of every named model: JSON + PNG under $(ANALYSIS_OUT)
#   make analysis-check    the analysis tests
ANALYSIS_OUT ?= bench/analysis

.PHONY: analyze analysis analysis-check

analyze: setup
	@test -n "$(NET)" || { echo "usage: make analyze NET=file.prototxt [INPUT=1x3xHxW] [PHASE=TRAIN|TEST]" >&2; exit 2; }
	$(PY) -m tools.analyze $(NET) $(if $(INPUT),--input $(INPUT)) $(if $(PHASE),--phase $(PHASE))

# `caffe time` builds the TRAIN phase, so that is the phase analysed here.
analysis: setup
	mkdir -p $(ANALYSIS_OUT)/nets
	for m in $(MODELS); do \
	  $(PY) -m prototxt_gen $$m --forms caffetime_mergebn --out $(ANALYSIS_OUT)/nets || exit $$?; \
	  $(PY) -m tools.analyze $(ANALYSIS_OUT)/nets/$${m}_caffetime_mergebn.prototxt --phase TRAIN --json \
	    --plot $(ANALYSIS_OUT)/$$m.png > $(ANALYSIS_OUT)/$$m.json || exit $$?; \
	  echo "$(ANALYSIS_OUT)/$$m.json $(ANALYSIS_OUT)/$$m.png"; \
	done

analysis-check: setup
	$(PY) -m pytest -q tests/test_analysis_*.py
