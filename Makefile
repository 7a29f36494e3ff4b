# Two commands do all the set-up on a fresh machine:  `make book`  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
# `make book` renders the committed full executions (book/executed/, no re-execution);
# `make book PROFILE=smoke|full` re-executes every chapter first, then renders those executions.
BOOK_EXECUTES := $(if $(PROFILE),yes,)
PROFILE ?= smoke
EXTRAS ?= book,text,dev
MATHJAX := _build/npm/node_modules/mathjax/es5/tex-chtml.js
TIMINGS := _build/timings.tsv
# Offline data: use ../shared/data when it sits beside the checkout (CI, developers).
ifneq ($(wildcard ../shared/data),)
export MLCL_DATA ?= $(abspath ../shared/data)
endif

# A fresh timing table for each top-level `make book` / `make test`.
ifneq ($(filter book test full,$(MAKECMDGOALS)),)
$(shell rm -f $(TIMINGS))
endif

# time_step NAME COMMAND...: run a step and log its wall time to $(TIMINGS)
define time_step
	@mkdir -p _build; s=$$(date +%s.%N); $(2); rc=$$?; e=$$(date +%s.%N); \
	printf '%s\t%.1f\t%s\n' "$(1)" "$$(echo "$$e - $$s" | bc)" "$$([ $$rc = 0 ] && echo ok || echo FAILED)" >> $(TIMINGS); \
	exit $$rc
endef

.PHONY: install venv mathjax test book reproduce full timings clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(call time_step,install,{ test -x $(PY) || $(PYTHON) -m venv $(VENV); } && \
	  { $(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q '$(TORCH_PIN)'; } && \
	  $(PY) -m pip install -q -e '.[$(EXTRAS)]' && touch $@)

venv: install

mathjax: $(MATHJAX)
$(MATHJAX):
	$(call time_step,mathjax,npm install --silent --no-audit --no-fund --prefix _build/npm mathjax@3 >/dev/null)

test: install mathjax
	$(call time_step,pytest (unit + notebooks + book),$(PY) -m pytest tests)
	@$(MAKE) --no-print-directory timings

reproduce: install
	$(call time_step,mlcl reproduce --profile $(PROFILE),$(VENV)/bin/mlcl reproduce --profile $(PROFILE))

book: install mathjax
ifeq ($(BOOK_EXECUTES),yes)
	$(call time_step,mlcl reproduce --profile $(PROFILE),$(VENV)/bin/mlcl reproduce --profile $(PROFILE))
	$(call time_step,mlcl book --from build,$(VENV)/bin/mlcl book --from build)
else
	$(call time_step,mlcl book (committed executions),$(VENV)/bin/mlcl book)
endif
	@$(MAKE) --no-print-directory timings
	@echo "Open file://$(abspath _build/html/index.html)"

full:
	$(MAKE) book PROFILE=full

# On one GPU, < 8 min: unit tests on cuda, every chapter (smoke, --device cuda), the CUDA benchmark
# rows -> results/gpu/summary.json. Refuses in one line without CUDA; `--dry-run` lists the steps.
.PHONY: gpu-check
gpu-check: install
	$(PY) benchmarks/gpu_check.py

timings:
	@echo; echo "step timings (seconds)"; printf '%-40s %9s  %s\n' step seconds status; \
	  [ -f $(TIMINGS) ] && awk -F'\t' '{printf "%-40s %9s  %s\n", $$1, $$2, $$3}' $(TIMINGS) || true

clean:
	rm -rf _build
