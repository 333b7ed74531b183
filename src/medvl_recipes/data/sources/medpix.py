# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""MedPix 2.0 (CHILab1/MedPix-2.0).

```
<path>/MedPix-2-0/  (or <path> itself)
  images/<image>.png
  Descriptions.json | Description.json          one object per image
  Case_topic.json                               one object per case
  splitted_dataset/descriptions_{train,dev,test}.jsonl, data_{train,dev,test}.jsonl
```
Descriptions are read from `splitted_dataset/descriptions_*.jsonl` when present (train_1/train_2 are subsets of
train and are skipped so that no image is read twice), else from the root JSON. `text_field`: `caption` (the
image's caption, default), `findings` (the case's Findings) or `both`. Modality is normalised: the case lists and
the overview CSV say TAC/MRI where descriptions say CT/MR. Records are grouped by case (`U_id`).
"""

import json
from collections.abc import Iterator
from pathlib import Path

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import (
    RawRecord,
    normalise_license,
    read_findings_sidecar,
    register_source,
    require_dir,
)
from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import read_jsonl


DEFAULT_LICENSE = "medpix-terms-non-commercial"
MODALITY = {"TAC": "CT", "CT": "CT", "MRI": "MR", "MR": "MR"}
_SPLITS = {"train": "train", "validation": "dev", "dev": "dev", "test": "test"}


def _read_json_records(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [row for _, row in read_jsonl(path)]
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if not isinstance(data, list):
        raise MedvlError(f"{path}: expected a JSON list of objects")
    return data


def _case_files(root: Path, splits: list[str]) -> list[Path]:
    split_dir = root / "splitted_dataset"
    files = [split_dir / f"data_{s}.jsonl" for s in splits if (split_dir / f"data_{s}.jsonl").is_file()]
    return files or [p for p in (root / "Case_topic.json",) if p.is_file()]


def _description_files(root: Path, splits: list[str]) -> list[Path]:
    split_dir = root / "splitted_dataset"
    files = [
        split_dir / f"descriptions_{s}.jsonl" for s in splits if (split_dir / f"descriptions_{s}.jsonl").is_file()
    ]
    return files or [p for p in (root / "Descriptions.json", root / "Description.json") if p.is_file()][:1]


@register_source("medpix")
def load_medpix(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield MedPix 2.0 image records. See the module docstring for layout and options.

    Args:
        source (`SourceConfig`):
            `path` is the repository or its `MedPix-2-0` folder; `text_field` is caption|findings|both.
    """
    root = require_dir(Path(source.path), "medpix")
    sidecar = read_findings_sidecar(root)
    if (root / "MedPix-2-0").is_dir():
        root = root / "MedPix-2-0"
    sidecar = sidecar or read_findings_sidecar(root)
    text_field = source.text_field or "caption"
    if text_field not in {"caption", "findings", "both"}:
        raise MedvlError(f"source {source.name!r}: text_field must be caption|findings|both, got {text_field!r}")
    splits = [_SPLITS.get(s, s) for s in (source.splits or ["train", "dev", "test"])]
    descriptions = _description_files(root, splits)
    if not descriptions:
        raise MedvlError(f"source 'medpix': no descriptions_*.jsonl or Descriptions.json under {root}")
    case_findings: dict[str, str] = {}
    case_modalities: dict[str, str] = {}
    for case_file in _case_files(root, splits):
        for case in _read_json_records(case_file):
            case_findings[case["U_id"]] = ((case.get("Case") or {}).get("Findings") or "").strip()
            for key in ("TAC", "MRI"):
                for image_name in case.get(key) or []:
                    case_modalities[image_name] = MODALITY[key]
    seen: set[str] = set()
    for file in descriptions:
        for line_number, row in enumerate(_read_json_records(file), start=1):
            image_name = str(row["image"])
            if image_name in seen:
                continue
            seen.add(image_name)
            description = row.get("Description") or {}
            caption = (description.get("Caption") or "").strip()
            findings_text = case_findings.get(row.get("U_id"), "")
            text = {"caption": caption, "findings": findings_text}.get(text_field)
            if text is None:
                text = " ".join(t for t in (caption, findings_text) if t)
            raw_type = str(row.get("Type") or "").upper()
            yield RawRecord(
                id=image_name,
                text=text,
                image=root / "images" / f"{image_name}.png",
                group_id=f"medpix:{row.get('U_id') or image_name}",
                license=normalise_license(None, DEFAULT_LICENSE),
                findings=sidecar.get(image_name, []),
                modality=MODALITY.get(raw_type) or case_modalities.get(image_name),
                file=f"{file}:{line_number}",
                meta={
                    "plane": description.get("Plane"),
                    "location": row.get("Location"),
                    "figure_part": description.get("Figure Part"),
                },
            )
