# Two entry points, both self-contained on a fresh machine with Python >= 3.10:
#   make demo   set up .venv, make sample photos, scan them, clean and verify them into samples-clean/,
#               and scan the cleaned copies: nothing visible, nothing identifying left
#   make test   set up .venv with test tools, then lint, type-check and run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The wheels of the PP-OCR models veil finds plates and text with (the detector ships in the
# first, the recognizer in the second); src/veil/text/ocr.py checks their hashes.
RAPIDOCR := rapidocr_onnxruntime==1.4.4 rapidocr==3.10.0

.PHONY: demo test setup setup-test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# demo: scikit-image, for the sample pictures of examples/make_samples.py.
# The rapidocr wheels only for PP-OCR's model files (plates and text): --no-deps keeps their
# dependencies (requests, a second OpenCV build) out; veil runs the models itself.
setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[verify,demo,jxl,dng,svg]"
	$(BIN)/python -m pip install --quiet --no-deps $(RAPIDOCR)

# resemblyzer only for the speaker encoder's weights: --no-deps keeps torch and librosa out.
setup-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,verify,web,dataset,ray,jxl,dng,svg]"
	$(BIN)/python -m pip install --quiet --no-deps "resemblyzer==0.1.4"
	$(BIN)/python -m pip install --quiet --no-deps $(RAPIDOCR)
	bash scripts/install-test-tools.sh

demo: setup
	$(BIN)/python examples/make_samples.py samples
	$(BIN)/veil scan samples
	$(BIN)/veil clean samples -o samples-clean --report samples-report.jsonl --overwrite --verify
	$(BIN)/veil scan samples-clean

lint: setup-test
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q --durations=10
