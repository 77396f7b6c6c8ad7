# The two commands of the README: `make demo` runs the whole method offline at small scale, `make test` runs
# the tests. Both create .venv (with the pinned versions of constraints.txt) when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INSTALL_KIB ?= 7000000
DEMO_CONFIG ?= configs/demo.yaml
DEMO_RUN ?= demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || [ $$(df -Pk . | awk 'NR==2 {print $$4}') -ge $(INSTALL_KIB) ] || { echo "make install:" \
		"$$(df -Pk . | awk 'NR==2 {print int($$4 / 1024)}') MiB free here; .venv needs about 6.5 GiB" \
		"(torch 2.14.1 from PyPI is its CUDA build)" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $@

demo: $(STAMP)
	$(PY) -m l2o pipeline --config $(DEMO_CONFIG) --run-id $(DEMO_RUN)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
