# maa — make targets used by people and CI. Everything runs inside .venv (created on demand).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH_ARGS ?= --quick

.PHONY: install test lint format bench quickstart corpus clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# pytest exits 5 when it collects no tests; make treats that as a failure, as it should
test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# each benchmark prints a table and writes bench/results/<name>.json
bench: install
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f $(BENCH_ARGS); done

# the whole path on the six example recordings: tiny VAE → tiny diffusion model → out.wav
QUICK := runs/quickstart
EXAMPLE := data_manifests/example/example.parquet
quickstart: install
	rm -rf $(QUICK)
	$(VENV)/bin/maa train-vae --manifest $(EXAMPLE) --out $(QUICK) --preset tiny \
		--max-steps 300 --batch-size 4 --crop-frames 24 --device cpu --ckpt-every 300
	$(VENV)/bin/maa train-ldm --manifest $(EXAMPLE) --bundle $(QUICK) --preset tiny \
		--max-steps 300 --batch-size 4 --crop-seconds 0.28 --device cpu --ckpt-every 300
	$(VENV)/bin/maa generate "a crow caws" -o out.wav --bundle $(QUICK) --duration 1 --seed 0 --png
	@echo "wrote out.wav and out.png (tiny model trained on 4 clips: expect a rough sound)"

# real labelled corpus from Debian sound packages (~13 min cold, ~8 GB package cache);
# tinysoundfont renders the GM SoundFont and is installed without its pyaudio dependency
CORPUS ?= corpus
corpus: install
	$(PY) -m pip install --quiet --no-deps "tinysoundfont>=0.3.7"
	$(VENV)/bin/maa corpus build --out $(CORPUS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/results
