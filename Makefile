# Everything runs inside .venv, created on first use; nothing is installed by hand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Folder holding benchmark/ (Set5, Set14, BSD100, Urban100) and train/; data tests skip without it.
DATA   ?=

.PHONY: venv test demo benchmark results bench-upscale pipeline clean

venv: $(STAMP)

# uv installs the wheels in parallel, twice as fast as pip on 2 cores; pip where uv cannot be had.
# Bytecode is compiled here, as imports cannot write it where PYTHONDONTWRITEBYTECODE is set.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	($(PY) -m pip install --quiet uv && $(PY) -m uv pip install --quiet --compile-bytecode --python $(PY) -e '.[test]') \
		|| ($(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -e '.[test]')
	touch $(STAMP)

# two pytest workers: on 2 cores the notebooks' kernel starts, tracing and file work of one overlap the other's
# TensorFlow compute (the suite's wall time falls by about 40%); TEST_JOBS=0 runs it in one process. srlib's
# bytecode is compiled first, once, rather than in each of the tests' kernels and subprocesses (see venv).
TEST_JOBS ?= 2
test: $(STAMP)
	$(PY) -m compileall -q srlib
	SRLIB_DATA=$(DATA) $(PY) -m pytest $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS) --dist worksteal)

BENCH_DATA := $(or $(DATA),data)
SETS ?= Set5 Set14 BSD100 Urban100
# The course pipeline (notebooks 01-07 under papermill): PROFILE smoke | cpu | gpu, RECIPE report | paper.
PROFILE ?= cpu
RECIPE  ?= report

benchmark: $(STAMP)
	@test -d $(BENCH_DATA)/benchmark/Set5 || test -d $(BENCH_DATA)/Set5 || { echo "no data: put Set5/Set14/BSD100 in data/benchmark/, or give a mirror: make $@ DATA=../shared/data" >&2; exit 2; }
	$(PY) -m srlib benchmark --model bicubic --data $(BENCH_DATA) \
		--sets $(SETS) --scale 4 --out figures/bicubic_x4.json
	$(PY) tools/readme_tables.py

# The README's results: bicubic and the shipped models beside the published figures, and zoomed crops.
CROPS ?= Set5/butterfly Set14/zebra BSD100/148026 Urban100/img_092
# and for real photos: the same models with clean, degraded (Real-ESRGAN's chain) and JPEG inputs, and a gallery of
# camera JPEGs; then, for the cache only, their Set5 scores with those inputs, which the smoke profile's chapter 7
# reads instead of scoring the shipped models again
REAL_SETS ?= Set14 BSD100
results: $(STAMP)
	@test -d $(BENCH_DATA)/benchmark/Set5 || test -d $(BENCH_DATA)/Set5 || { echo "no data: put the sets in data/benchmark/, or give a mirror: make $@ DATA=../shared/data" >&2; exit 2; }
	rm -rf srlib/weights/results  # measured again here; chapters 6 and 7 then reuse these per-image results
	$(PY) -m srlib benchmark --model bicubic srresnet-x4 srgan-mse-x4 srresnet-real-x4 --data $(BENCH_DATA) --sets $(SETS) \
		--table figures/results_x4.md --crops figures/results_x4_crops.png --crop-images $(CROPS) \
		--results-cache srlib/weights/results
	$(PY) -m srlib benchmark --model bicubic srresnet-x4 srgan-mse-x4 srresnet-real-x4 --data $(BENCH_DATA) \
		--sets $(REAL_SETS) --degradation bicubic realistic jpeg50 jpeg75 --table figures/results_x4_real.md \
		--gallery figures/results_x4_gallery.png --results-cache srlib/weights/results
	$(PY) -m srlib benchmark --model srresnet-x4 srgan-mse-x4 srresnet-real-x4 --data $(BENCH_DATA) --sets Set5 \
		--degradation realistic jpeg50 jpeg75 --results-cache srlib/weights/results > /dev/null
	$(PY) tools/readme_tables.py

# Speed and peak memory of upscaling 512x512 and 2048x2048 inputs with the shipped model (about 12 minutes).
bench-upscale: $(STAMP)
	$(PY) benchmarks/bench_upscale.py --out figures/bench_upscale.md
	$(PY) tools/readme_tables.py

# With DATA the data are copied from that mirror; without it they are downloaded into data/.
pipeline: $(STAMP)
	$(PY) -m srlib pipeline --profile $(PROFILE) --recipe $(RECIPE) $(if $(DATA),--source $(DATA))

# The demo is the cpu profile: figures/cpu-$(RECIPE)/, the executed chapters in course/$(RECIPE)/ and the README
# tables come from it.
demo: $(STAMP)
	$(PY) -m srlib pipeline --profile cpu --recipe $(RECIPE) $(if $(DATA),--source $(DATA)) --publish course/$(RECIPE)
	$(PY) tools/readme_tables.py

clean:
	rm -rf $(VENV) .pytest_cache
