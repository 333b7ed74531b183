# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""MedPix 2.0 (CHILab1/MedPix-2.0).

```
<path>/MedPix-2-0/  (or <path> itself)
  images/<image>.png
  Descriptions.json | Description.json          one object per image
  Case_topic.json                               one object per case
  splitted_dataset/descriptions_{train,dev,test}.jsonl, data_{train,dev,test}.jsonl
```
Both layouts of the repository are read: at 0f6006b `Case_topic.json`, `Description.json` and `splitted_dataset/`
sit at the root; from dbb2eab on they are under `MedPix-2-0/` (with `images/` and `images_overview.csv`).
Descriptions are read from `splitted_dataset/descriptions_*.jsonl` when present (train_1/train_2 are subsets of
train and are not read, so that no image is read twice), else from the root JSON. An image listed twice is
yielded twice and counted as `duplicate_id` by prepare. The release's authoring placeholder caption ("Replace
this - DESCRIPTION OF THE IMAGE OR FINDINGS.", e.g. `splitted_dataset/descriptions_dev.jsonl` at 7ba3dd1) is
dropped by cleaning as `junk_text`. `text_field`: `caption` (the
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
from medvl_recipes.data.text_files import read_jsonl_utf8, read_text
from medvl_recipes.errors import MedvlError


DEFAULT_LICENSE = "medpix-terms-non-commercial"
MODALITY = {"TAC": "CT", "CT": "CT", "MRI": "MR", "MR": "MR"}
_SPLITS = {"train": "train", "validation": "dev", "dev": "dev", "test": "test"}
LAYOUTS = (
    "<path>[/MedPix-2-0]/splitted_dataset/descriptions_{train,dev,test}.jsonl or Descriptions.json/Description.json, "
    "with images/<image>.png"
)


def _read_json_records(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [row for _, row in read_jsonl_utf8(path, what="one MedPix JSON object per line")]
    try:
        data = json.loads(read_text(path, what="a MedPix JSON list").text)
    except json.JSONDecodeError as err:
        raise MedvlError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); expected a JSON list of objects") from err
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
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


@register_source("medpix", layouts=LAYOUTS)
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
        raise MedvlError(
            f"source {source.name!r} (medpix): no descriptions_*.jsonl for splits {splits} or Descriptions.json under "
            f"{root}; layouts known: {LAYOUTS}"
        )
    case_findings: dict[str, str] = {}
    case_modalities: dict[str, str] = {}
    for case_file in _case_files(root, splits):
        for case in _read_json_records(case_file):
            if "U_id" not in case:
                raise MedvlError(f"{case_file}: a case without 'U_id'; expected MedPix Case_topic objects")
            case_findings[case["U_id"]] = ((case.get("Case") or {}).get("Findings") or "").strip()
            for key in ("TAC", "MRI"):
                for image_name in case.get(key) or []:
                    case_modalities[image_name] = MODALITY[key]
    for file in descriptions:
        for line_number, row in enumerate(_read_json_records(file), start=1):
            if "image" not in row:
                raise MedvlError(f"{file}:{line_number}: no 'image' field; expected a MedPix description object")
            image_name = str(row["image"])
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
