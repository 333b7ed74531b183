# medvl-recipes: `make quickstart` runs every stage on the embedded sample data; `make test` runs the checks.
.PHONY: install quickstart test test-slow test-distributed quality style clean help

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
# A GPU user passes their own build, e.g. `make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
TORCH_SPEC ?= torch==2.13.0
QS         ?= outputs/quickstart
# Everything below runs offline: models and data are built locally.
OFFLINE    := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

help:
	@echo "make install     create $(VENV): torch first ($(TORCH_SPEC)), then medvl-recipes[dev]"
	@echo "make quickstart  run every stage on the embedded sample data into $(QS)/ (offline, CPU)"
	@echo "make test        ruff (lint + format check) and pytest (offline, no slow/gpu tests)"
	@echo "make test-slow   the slow tests too"
	@echo "make test-distributed  every engine x stage on 2 CPU processes, multi-node and QLoRA (~6 min)"
	@echo "make style       ruff format + fix"

install: $(VENV)/.installed

# torch goes in first so that no dependency can pull a multi-GB CUDA build; never torchvision.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

quickstart: install
	@mkdir -p $(QS)
	$(OFFLINE) $(BIN)/medvl tiny-models --output-dir $(QS)/models
	$(OFFLINE) $(BIN)/medvl sample-data --output-dir $(QS)/raw --num-studies 900 --overwrite
	$(OFFLINE) $(BIN)/medvl prepare --config recipes/data/sample.yaml --data-root $(QS)/raw --output-dir $(QS)/dataset
	$(OFFLINE) $(BIN)/medvl to-chat --dataset $(QS)/dataset --output-dir $(QS)/chat
	$(OFFLINE) $(BIN)/medvl train-encoder --config recipes/siglip-base-patch16-224/encoder/config_smoke.yaml \
		--model_name_or_path $(QS)/models/tiny-siglip --dataset_name $(QS)/dataset --output_dir $(QS)/encoder --overwrite_output_dir true
	$(OFFLINE) $(BIN)/medvl train-decoder --config recipes/llama-3.2-11b-vision/decoder/config_smoke.yaml \
		--model_name_or_path $(QS)/models/tiny-llama-3.2-vision --dataset_name $(QS)/chat --vision_warmup_encoder $(QS)/encoder \
		--output_dir $(QS)/decoder --overwrite_output_dir true
	$(OFFLINE) $(BIN)/medvl eval --config eval/configs/smoke.yaml \
		--decoder $(QS)/decoder --encoder $(QS)/encoder --dataset $(QS)/dataset --output-dir $(QS)/eval
	@echo
	@echo "== Encoder: validation retrieval before -> after training ($(QS)/encoder/retrieval_before_after.json)"
	@$(BIN)/python -c "import json, sys; print(json.load(open(sys.argv[1]))['table'])" $(QS)/encoder/retrieval_before_after.json
	@echo
	@echo "== Eval report ($(QS)/eval/report.md)"
	@cat $(QS)/eval/report.md
	@echo
	@echo "Quickstart outputs are in $(QS)/:"
	@echo "  models/   tiny random SigLIP and Llama-3.2-Vision checkpoints (from_pretrained-loadable)"
	@echo "  raw/      embedded sample data in the ROCO, ROCOv2, MedPix 2.0, Open-I and DICOM formats"
	@echo "  dataset/  cleaned, de-duplicated, leak-free train/validation parquet + dataset card + prepare_report.json"
	@echo "  chat/     the same pairs as TRL chat-format JSONL (train.jsonl, validation.jsonl, images/)"
	@echo "  encoder/  the fine-tuned SigLIP (safetensors, processor, model card, retrieval before/after)"
	@echo "  decoder/  the fine-tuned Llama-3.2-Vision (safetensors, processor, generation config, model card)"
	@echo "  eval/     metrics.json, per_sample.jsonl, report.md, plots, model_index.yaml"
	@echo
	@echo "Start the demo on these outputs (then open http://127.0.0.1:7860):"
	@echo "  $(OFFLINE) $(BIN)/python app.py --quickstart-dir $(QS)"
	@echo
	@echo "== Reports for three new, unlabelled images (a JPEG, a PNG and an extension-less DICOM; seed-1 sample data)"
	$(OFFLINE) $(BIN)/medvl sample-data --output-dir $(QS)/new_raw --seed 1 --overwrite
	@rm -rf $(QS)/new_images && mkdir -p $(QS)/new_images
	@cp "$$(ls $(QS)/new_raw/roco/data/train/radiology/images/*.jpg | head -1)" $(QS)/new_images/radiograph.jpg
	@cp "$$(ls $(QS)/new_raw/rocov2_csv/train/*.png | head -1)" $(QS)/new_images/scan.png
	@cp "$$(ls $(QS)/new_raw/dicom/phantom_*.dcm | head -1)" $(QS)/new_images/IM000001
	$(OFFLINE) $(BIN)/medvl generate $(QS)/new_images --decoder $(QS)/decoder --encoder $(QS)/encoder \
		--index-dataset $(QS)/dataset --output-dir $(QS)/generate --overwrite --print

quality: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: quality
	$(OFFLINE) $(BIN)/pytest

test-slow: install
	$(OFFLINE) $(BIN)/pytest -m "slow and not gpu"

# DDP, ZeRO-2/3 x encoder/decoder through accelerate launch, ZeRO-3 resume, 2-machine rendezvous, QLoRA (CPU).
test-distributed: install
	$(OFFLINE) $(BIN)/pytest -m "not gpu" tests/test_distributed.py tests/test_launch.py tests/test_qlora.py

clean:
	rm -rf $(QS) .pytest_cache .ruff_cache
