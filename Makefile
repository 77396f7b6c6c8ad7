# The two commands of the README: `make demo` runs the main job offline at small scale, `make test` runs
# the tests. Both create .venv (with the pinned versions of constraints.txt) when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INSTALL_KIB ?= 7000000
DEMO_STEPS ?= 1000
DEMO_SEEDS ?= 5
DEMO_MINUTES ?= 3
DEMO_OUT ?= $(or $(L2O_STORAGE),$(HOME)/.l2o/storage)/demo

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
	$(PY) -m l2o meta-train --model rp --task mnist_mlp --max-minutes $(DEMO_MINUTES) --epochs 1000 \
		--curriculum 100,200,500 --eval-every 4 --patience 3 --eval-seeds 2 --meta-lr 3e-3 \
		--imitation-prob 0.2 --teacher-lr 3e-3 --out $(DEMO_OUT)/rp.pt
	$(PY) -m l2o eval --task mnist_mlp --optimizer lstm:checkpoint=$(DEMO_OUT)/rp.pt --optimizer adam:lr=1e-3 \
		--optimizer sgd:lr=0.1 --optimizer rmsprop:lr=1e-3 --tune adam --steps $(DEMO_STEPS) \
		--seeds $(DEMO_SEEDS) --out $(DEMO_OUT)/eval

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
