# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Model cards for the checkpoints the recipes train: Hub YAML metadata plus the sections a reader needs.

`write_model_card` is called by the encoder and decoder entry points when they save a checkpoint, and
`update_model_card` by `medvl push model` once the repo id, the pushed dataset id and the evaluation results are
known. Both go through `huggingface_hub.ModelCard`/`ModelCardData` so the metadata is what the Hub validates.
"""

import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, ModelCard, ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

STAGES = {
    "encoder": {
        "pipeline_tag": "zero-shot-image-classification",
        "tags": ["siglip", "contrastive", "image-text-retrieval"],
        "summary": "A SigLIP image-text encoder fine-tuned on medical image-report pairs with the sigmoid contrastive loss",
        "license": "apache-2.0",
    },
    "decoder": {
        "pipeline_tag": "image-text-to-text",
        "tags": ["mllama", "report-generation", "trl", "sft"],
        "summary": "A Llama 3.2 Vision (Mllama) model fine-tuned with TRL SFT to write radiology-style reports",
        "license": "llama3.2",
    },
}
COMMON_TAGS = ["medical", "radiology", "medvl-recipes"]
MODEL_INDEX_FILE = "model_index.yaml"
# Hub ids are `name` or `namespace/name`; anything else (absolute paths, `./x`) is a local checkpoint.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_MODEL_ID_LINE = re.compile(r'^model_id = ".*"$', flags=re.MULTILINE)
_DATASET_SECTION = re.compile(r"(## Dataset\n\n)(.*?)(\n\n## )", flags=re.DOTALL)

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ summary }}.
It was trained with [medvl-recipes](https://github.com/medvl-recipes/medvl-recipes) from
{{ base_model_text }}.

> **Not for clinical use.** This is a research artefact. Its outputs are not a diagnosis and must not be used
> to make or support clinical decisions.

## Recipe

{% if recipe_yaml -%}
The full recipe{% if recipe_name %} (`{{ recipe_name }}`){% endif %}, as it was run:

```yaml
{{ recipe_yaml }}
```
{%- elif recipe_name -%}
Recipe: `{{ recipe_name }}`.
{%- else -%}
No recipe file was recorded for this checkpoint.
{%- endif %}

## Dataset

{{ dataset_text }}

## Results

{% if metrics_rows -%}
| Metric | Value |
|---|---|
{% for name, value in metrics_rows -%}
| {{ name }} | {{ value }} |
{% endfor %}
{%- else -%}
No evaluation results were recorded. Run `medvl eval` and push again to add them.
{%- endif %}
{% if training_args_yaml %}
## Training hyperparameters

<details>
<summary>All training arguments</summary>

```yaml
{{ training_args_yaml }}
```

</details>
{% endif %}
## Intended use

{{ intended_use }}

## Limitations

- **Not for clinical use.** The model has not been validated clinically and is not a medical device.
- It was trained on a small public research corpus; it reproduces the style and biases of those reports and
  can describe findings that are not in the image (hallucination) or miss findings that are.
- Performance on other modalities, institutions, scanners or patient populations is unknown.
- Inputs must be de-identified; the model was not designed to handle protected health information.

## How to load

```python
{{ how_to_load }}
```
"""

_ENCODER_USE = (
    "Research on medical image-text retrieval and zero-shot classification: finding reports similar to an image, "
    "scoring image-report agreement, and as the vision tower of a report-generation model."
)
_DECODER_USE = (
    "Research on automatic report generation from medical images: drafting a findings paragraph for an image, "
    "for benchmarking and for studying failure modes. A human expert must review every output."
)

_ENCODER_LOAD = """import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

model_id = "{model_id}"
model = AutoModel.from_pretrained(model_id).eval()
processor = AutoProcessor.from_pretrained(model_id)

image = Image.open("chest_xray.png").convert("RGB")
texts = ["No acute cardiopulmonary abnormality.", "Large left pleural effusion."]
inputs = processor(text=texts, images=image, padding="max_length", return_tensors="pt")
with torch.no_grad():
    outputs = model(**inputs)
print(torch.sigmoid(outputs.logits_per_image))  # image-report match probabilities"""

# The prompt exactly as training and `medvl generate` build it: system turn, image + instruction, assistant header.
# The chat template already starts with <|begin_of_text|>, so the processor must not add a second BOS.
_DECODER_LOAD = """from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

model_id = "{model_id}"
{load_model}
processor = AutoProcessor.from_pretrained(model_id)

image = Image.open("chest_xray.png").convert("RGB")
{messages}
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=[[image]], text=[prompt], add_special_tokens=False, return_tensors="pt").to(model.device)
inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
output = model.generate(**inputs, max_new_tokens=128, do_sample=False)
print(processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())"""

# A decoder trained with a retrieval context is asked with the reports of the training images nearest to the image,
# found by the encoder stored with it (`medvl_recipes.retrieval_context`).
_CONTEXT_MESSAGES = """from medvl_recipes.prompts import build_messages
from medvl_recipes.retrieval_context import load_retrieval_context

# Trained with a retrieval context: the prompt carries the reports of the training images nearest to this one.
context = load_retrieval_context(model_id).reports_for([image])[0]
messages = build_messages({instruction!r}, {system_prompt!r}, context=context)"""

_DECODER_LOAD_FULL = "model = AutoModelForImageTextToText.from_pretrained(model_id).eval()"
_DECODER_LOAD_ADAPTER = """from peft import PeftModel

# The repo holds a LoRA adapter: load the base model, then the adapter on top.
base = AutoModelForImageTextToText.from_pretrained("{base_model}")
model = PeftModel.from_pretrained(base, model_id).eval()"""


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and not Path(name).exists() and bool(_HUB_ID.match(name))


def _read_recipe(recipe: str | Path | None) -> tuple[str | None, str | None]:
    """Return `(name, yaml_text)` for a recipe given as a file path or as YAML text."""
    if recipe is None:
        return None, None
    path = Path(recipe)
    if "\n" not in str(recipe) and path.is_file():
        return str(recipe), path.read_text(encoding="utf-8").strip()
    if "\n" in str(recipe) or ":" in str(recipe):
        return None, str(recipe).strip()
    # A recipe path that does not exist here (e.g. a relative path from another checkout): name it only.
    return str(recipe), None


def load_model_index(model_index: str | Path | list | dict | None) -> list[dict] | None:
    """Read an eval `model-index` from a list, a `{"model-index": [...]}` dict, or a YAML/JSON file.

    Args:
        model_index (`str`, `Path`, `list` or `dict`, *optional*):
            The `model-index` itself, or the path of the `model_index.yaml` (or a directory holding one) that
            `medvl eval` writes.
    """
    if model_index is None:
        return None
    source = "model_index"
    if isinstance(model_index, (str, Path)):
        path = Path(model_index)
        if path.is_dir():
            path = path / MODEL_INDEX_FILE
        if not path.is_file():
            raise MedvlError(
                f"model index {path} does not exist; pass the `{MODEL_INDEX_FILE}` that `medvl eval` wrote"
            )
        source = str(path)
        model_index = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(model_index, dict):
        model_index = model_index.get("model-index", model_index.get("model_index"))
    if not isinstance(model_index, list) or not model_index:
        raise MedvlError(f"{source}: expected a non-empty `model-index` list of {{name, results}} entries")
    try:
        model_index_to_eval_results(model_index)
    except (KeyError, TypeError, ValueError) as err:
        raise MedvlError(
            f"{source}: invalid model-index ({type(err).__name__}: {err}); each result needs task.type, "
            "dataset.type, dataset.name and metrics with type and value"
        ) from err
    return model_index


def _flatten_metrics(metrics: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten_metrics(value, prefix=f"{name}/")
        elif isinstance(value, float):
            rows.append((name, f"{value:.4g}"))
        elif isinstance(value, (int, str, bool)):
            rows.append((name, str(value)))
    return rows


def _metrics_rows(metrics: dict | None, model_index: list[dict] | None) -> list[tuple[str, str]]:
    if metrics:
        return _flatten_metrics(metrics)
    rows = []
    for entry in model_index or []:
        for result in entry.get("results", []):
            dataset_name = result.get("dataset", {}).get("name", "")
            for metric in result.get("metrics", []):
                name = metric.get("name") or metric["type"]
                value = metric["value"]
                rows.append(
                    (
                        f"{name} ({dataset_name})" if dataset_name else name,
                        f"{value:.4g}" if isinstance(value, float) else str(value),
                    )
                )
    return rows


def _dataset_info(dataset: str | Path | None) -> tuple[list[str] | None, str, str | None]:
    """Return `(hub_dataset_ids, markdown, data_license)` for a Hub dataset id or a local prepared dataset."""
    if dataset is None:
        return None, "The training dataset was not recorded.", None
    dataset = str(dataset)
    path = Path(dataset)
    if path.is_dir():
        data_license = None
        card_path = path / "README.md"
        if card_path.is_file():
            data_license = DatasetCard.load(card_path, ignore_metadata_errors=True).data.get("license")
        text = (
            f"Trained on a dataset prepared with `medvl prepare` (local directory `{path.name}`); its dataset card "
            f"(`README.md` in that directory) lists the sources, cleaning, de-duplication and split."
        )
        return None, text + _license_sentence(data_license), data_license
    text = f"Trained on [{dataset}](https://huggingface.co/datasets/{dataset}); see its dataset card for sources and licences."
    return [dataset], text, None


def _license_sentence(data_license: Any) -> str:
    if not data_license:
        return ""
    licenses = data_license if isinstance(data_license, list) else [data_license]
    return f" Data licence(s): {', '.join(f'`{x}`' for x in licenses)}; the model inherits their terms of use."


def _how_to_load(output_dir: Path, stage: str, base_model: str, is_adapter: bool) -> str:
    # The card's snippet asks the model exactly as `medvl generate` does: the stored prompt and the chat template.
    if stage != "decoder":
        return _ENCODER_LOAD.format(model_id=output_dir.as_posix())
    load_model = _DECODER_LOAD_ADAPTER.format(base_model=base_model) if is_adapter else _DECODER_LOAD_FULL
    from medvl_recipes.prompts import build_messages, read_prompt
    from medvl_recipes.retrieval_context import CONTEXT_DIR

    instruction, system_prompt = read_prompt(str(output_dir))
    if (output_dir / CONTEXT_DIR).is_dir():
        messages = _CONTEXT_MESSAGES.format(instruction=instruction, system_prompt=system_prompt)
    else:
        messages = f"messages = {json.dumps(build_messages(instruction, system_prompt), ensure_ascii=False)}"
    return _DECODER_LOAD.format(model_id=output_dir.as_posix(), load_model=load_model, messages=messages)


def write_model_card(
    output_dir: str | Path,
    *,
    stage: str,
    base_model: str,
    recipe: str | Path | None = None,
    dataset: str | Path | None = None,
    metrics: dict | None = None,
    training_args: dict | None = None,
    license: str | None = None,
    model_index: str | Path | list | dict | None = None,
) -> Path:
    """Write `output_dir/README.md`: Hub YAML metadata and the recipe, dataset, results, use and loading sections.

    Call it after `save_pretrained`/`trainer.save_model`, which (like PEFT) may write a card of their own.

    Args:
        output_dir (`str` or `Path`):
            The checkpoint directory; created if missing. A LoRA adapter (an `adapter_config.json` there) gets
            `library_name: peft` and adapter loading instructions.
        stage (`str`):
            `"encoder"` (SigLIP, `zero-shot-image-classification`) or `"decoder"` (Mllama, `image-text-to-text`).
        base_model (`str`):
            The model that was fine-tuned: a Hub id (written to the `base_model` metadata) or a local path.
        recipe (`str` or `Path`, *optional*):
            The recipe YAML file (its text is inlined), or the YAML text itself.
        dataset (`str` or `Path`, *optional*):
            A Hub dataset id (written to the `datasets` metadata) or a local prepared dataset directory (its card's
            licence is reported).
        metrics (`dict`, *optional*):
            Final metrics, `{name: value}` (nested dicts are flattened as `outer/inner`), shown as a table.
        training_args (`dict`, *optional*):
            Hyperparameters to list (e.g. `TrainingArguments.to_sanitized_dict()`).
        license (`str`, *optional*):
            The model licence; defaults to the base model's (`llama3.2` for the decoder, `apache-2.0` for SigLIP).
        model_index (`str`, `Path`, `list` or `dict`, *optional*):
            Evaluation results as a Hub `model-index`, or the path of the `model_index.yaml` that `medvl eval`
            wrote; written to the metadata and, without `metrics`, to the results table.

    Returns:
        `Path`: the path of the written `README.md`.
    """
    if stage not in STAGES:
        raise MedvlError(f"write_model_card: unknown stage {stage!r}; expected one of {sorted(STAGES)}")
    spec = STAGES[stage]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    is_adapter = (output_dir / "adapter_config.json").is_file()
    index = load_model_index(model_index)
    recipe_name, recipe_yaml = _read_recipe(recipe)
    dataset_ids, dataset_text, _ = _dataset_info(dataset)
    eval_results = None
    model_name = None
    if index:
        model_name, eval_results = model_index_to_eval_results(index)

    card_data = ModelCardData(
        base_model=base_model if _is_hub_id(base_model) else None,
        datasets=dataset_ids,
        library_name="peft" if is_adapter else "transformers",
        license=license or spec["license"],
        pipeline_tag=spec["pipeline_tag"],
        tags=COMMON_TAGS + spec["tags"] + (["lora"] if is_adapter else []),
        eval_results=eval_results,
        model_name=model_name or output_dir.name,
    )
    how_to_load = _how_to_load(output_dir, stage, base_model, is_adapter)
    base_model_text = (
        f"[{base_model}](https://huggingface.co/{base_model})" if _is_hub_id(base_model) else f"`{base_model}`"
    )
    card = ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        title=output_dir.name,
        summary=spec["summary"] + (" (LoRA adapter)" if is_adapter else ""),
        base_model_text=base_model_text,
        recipe_name=recipe_name,
        recipe_yaml=recipe_yaml,
        dataset_text=dataset_text,
        metrics_rows=_metrics_rows(metrics, index),
        training_args_yaml=yaml.safe_dump(_jsonable(training_args), sort_keys=True).strip() if training_args else None,
        intended_use=_ENCODER_USE if stage == "encoder" else _DECODER_USE,
        how_to_load=how_to_load,
    )
    path = output_dir / "README.md"
    card.save(path)
    logger.info("Wrote the %s model card to %s", stage, path)
    return path


def _jsonable(value: dict) -> dict:
    # TrainingArguments dicts hold enums and paths; a JSON round trip turns them into plain YAML scalars.
    # Credentials (`hub_token`, ...) never go into a card that gets uploaded.
    return json.loads(json.dumps({k: v for k, v in value.items() if "token" not in k.lower()}, default=str))


def update_model_card(
    folder: str | Path,
    *,
    repo_id: str | None = None,
    dataset_id: str | None = None,
    model_index: str | Path | list | dict | None = None,
) -> Path:
    """Point an existing model card at its Hub repo and dataset, and add evaluation results.

    Args:
        folder (`str` or `Path`):
            A directory with a `README.md` written by `write_model_card`.
        repo_id (`str`, *optional*):
            The model repo id; replaces the local path in the loading example.
        dataset_id (`str`, *optional*):
            The Hub dataset id of the training data; set as `datasets` metadata and linked in the dataset section.
        model_index (`str`, `Path`, `list` or `dict`, *optional*):
            Evaluation results (see `load_model_index`); set as `model-index` metadata and appended as a table
            when the card has none.
    """
    path = Path(folder) / "README.md"
    if not path.is_file():
        raise MedvlError(f"{folder} has no README.md model card; run write_model_card or train with a medvl recipe")
    card = ModelCard.load(path)
    if repo_id:
        card.text = _MODEL_ID_LINE.sub(f'model_id = "{repo_id}"', card.text)
        card.text = re.sub(r"^# .*$", f"# {repo_id.split('/')[-1]}", card.text, count=1, flags=re.MULTILINE)
    if dataset_id:
        card.data.datasets = [dataset_id]
        link = (
            f"Trained on [{dataset_id}](https://huggingface.co/datasets/{dataset_id}); its dataset card lists the "
            "sources, licences, cleaning, de-duplication and split."
        )
        license_note = re.search(r" Data licence\(s\): [^\n]*", card.text)
        card.text = _DATASET_SECTION.sub(
            lambda m: m.group(1) + link + (license_note.group(0) if license_note else "") + m.group(3), card.text
        )
    index = load_model_index(model_index)
    if index:
        model_name, eval_results = model_index_to_eval_results(index)
        card.data.model_name = model_name
        card.data.eval_results = eval_results
        if "No evaluation results were recorded" in card.text:
            table = "| Metric | Value |\n|---|---|\n" + "".join(
                f"| {name} | {value} |\n" for name, value in _metrics_rows(None, index)
            )
            card.text = re.sub(r"No evaluation results were recorded\.[^\n]*\n", table, card.text)
    card.save(path)
    return path
