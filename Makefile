# maa — make targets used by people and CI. Everything runs inside .venv (created on demand).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH_ARGS ?= --quick

.PHONY: install lock test lint format bench quickstart corpus default-bundle default-bundle-install demo clean

# upstream implementations the import tests compare against (test-only, MIT-licensed), pinned like
# the lock and installed without their dependencies (torchaudio, librosa, …): the tests load only
# the model files, which need torch and einops
TEST_REFS := "audioldm==0.1.1" "bigvgan==2.4.1" "msclap==1.3.4" "einops==0.8.2"

# the exact versions of requirements.lock into .venv (maa itself editable); repairs a broken venv
install:
	@PYTHON=$(PYTHON) VENV=$(VENV) scripts/install.sh
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(TEST_REFS)

# refresh requirements.lock deliberately: newest releases allowed by pyproject.toml, torch held at
# TORCH (default 2.13.0); then `make test` and commit the lock
lock:
	PYTHON=$(PYTHON) scripts/lock.sh

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
# tinysoundfont renders the GM SoundFont and is installed (pinned, like the lock) without its pyaudio
# dependency
CORPUS ?= corpus
corpus: install
	$(PY) -m pip install --quiet --no-deps "tinysoundfont==0.3.7"
	$(VENV)/bin/maa corpus build --out $(CORPUS)

# the shipped default model, trained from the corpus with the toolkit's own commands, seed 0:
# CLAP (reranking/scoring) → VAE → U-Net on MiniLM with dynamic reprogramming; the vocoder is the
# pretrained HiFi-GAN referenced from its package. About 2 h 25 min on a 2-core CPU; on a GPU add
# DEVICE=cuda. `make default-bundle-install` copies the exported weights into maa/assets.
DEVICE ?= cpu
DB := runs/default-bundle
ASSETS := maa/assets
default-bundle: install
	@test -f $(CORPUS)/manifest.parquet || { echo "no corpus at $(CORPUS): run 'make corpus' or pass CORPUS=DIR"; exit 2; }
	$(VENV)/bin/maa train-clap --manifest $(CORPUS)/manifest.parquet --out $(DB)/clap \
		--preset default --max-steps 800 --batch-size 32 --seed 0 --device $(DEVICE) \
		--ckpt-every 200 --val-every 200 $(if $(wildcard $(DB)/clap/train),--resume)
	$(VENV)/bin/maa train-vae --manifest $(CORPUS)/manifest.parquet --out $(DB)/model \
		--preset default --max-steps 1000 --batch-size 8 --crop-frames 128 --seed 0 \
		--device $(DEVICE) --ckpt-every 200 $(if $(wildcard $(DB)/model/train/vae),--resume)
	$(VENV)/bin/maa train-ldm --manifest $(CORPUS)/manifest.parquet --bundle $(DB)/model \
		--preset default --max-steps 4000 --batch-size 16 --crop-seconds 5 --lr 3e-4 \
		--warmup 100 --ema 0.999 --reprogram $(CORPUS)/manifest.parquet --reprogram-prob 0.25 \
		--seed 0 --device $(DEVICE) --ckpt-every 200 \
		$(if $(wildcard $(DB)/model/train/unet),--resume)

default-bundle-install:
	rm -rf $(ASSETS)/default_bundle $(ASSETS)/clap
	mkdir -p $(ASSETS)/default_bundle $(ASSETS)/clap
	cp $(DB)/model/bundle.json $(DB)/model/*.safetensors $(ASSETS)/default_bundle/
	cp $(DB)/clap/bundle.json $(DB)/clap/*.safetensors $(ASSETS)/clap/

# every stage once on a small slice of the corpus, with tiny models (~10 min on a 2-core CPU):
# slice → distill (label + retrieval over the corpus captions, reranked by the shipped CLAP) →
# reprogram → train-vae → train-ldm → generate (one clip per held-out test caption) → evaluate
DEMO := runs/demo
DEMO_CATEGORIES ?= birdsong,rain,horse,footsteps,hammering,sheep
M := $(VENV)/bin/maa
demo: install
	@test -f $(CORPUS)/manifest.parquet || { echo "no corpus at $(CORPUS): run 'make corpus' or pass CORPUS=DIR"; exit 2; }
	rm -rf $(DEMO)
	$(M) corpus slice $(CORPUS)/manifest.parquet -o $(DEMO)/slice --categories $(DEMO_CATEGORIES) \
		--per-category 24
	$(M) distill --audio-dir $(DEMO)/slice/audio -o $(DEMO)/captioned.parquet --device cpu \
		--caption-bank $(CORPUS)/manifest.parquet
	$(M) reprogram --manifest $(DEMO)/captioned.parquet --events $(DEMO)/captioned.parquet \
		-o $(DEMO)/composed.parquet --audio-out $(DEMO)/composed --n 360 --min-extra 0 \
		--max-extra 2 --max-seconds 4 --seed 0
	$(M) train-vae --manifest $(DEMO)/captioned.parquet --out $(DEMO)/bundle --preset tiny \
		--max-steps 600 --batch-size 16 --crop-frames 64 --device cpu --ckpt-every 300
	$(M) train-ldm --manifest $(DEMO)/composed.parquet --bundle $(DEMO)/bundle --preset tiny \
		--max-steps 600 --batch-size 16 --crop-seconds 2 --ema 0 --device cpu --ckpt-every 300
	$(M) generate --prompts $(DEMO)/slice/test.parquet --out-dir $(DEMO)/generated \
		--bundle $(DEMO)/bundle --duration 2 --seed 0
	$(M) evaluate -g $(DEMO)/generated/generated.parquet -r $(DEMO)/slice/test.parquet \
		--metrics fd,clap --embedder clap:$(ASSETS)/clap --clap $(ASSETS)/clap -o $(DEMO)/report.json
	@echo "demo done: audio in $(DEMO)/generated, scores in $(DEMO)/report.json"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/results
