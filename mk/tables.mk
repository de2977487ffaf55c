# make tables: rebuild the paper's / release README's tables from logs, beside the published
# figures and the measured results under bench/ (bench/paper.json: `make bench-paper`), with
# Fig. 1 redrawn as bench/tables/fig1.png (see docs/tables.md).
LOGS ?= ../shared/reference/release/log
TABLES_OUT ?= bench/tables

.PHONY: tables
tables: setup
	$(PY) -m tools.tables --logs $(LOGS) --out $(TABLES_OUT)
