# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""PMC-OA (`axiong/pmc_oa`): JSONL of `{"image", "caption", "pmcid"?, "url_name"?}` lines plus an image folder.

Reads `<path>/pmc_oa.jsonl` (current layout) or `<path>/{train,valid,test}.jsonl` (older layout); option
`jsonl` names other files. Images are looked up in `<path>/images/` (option `image_dir`), i.e. `images.zip`
extracted. Records are grouped by article (`pmcid`, else the `PMC...` prefix of the image name). Licence
defaults to `other` (PMC open-access articles carry per-article CC licences) unless set in the recipe.
"""

from collections.abc import Iterator
from pathlib import Path

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import RawRecord, read_findings_sidecar, register_source, require_dir
from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import read_jsonl


@register_source("pmc_oa")
def load_pmc_oa(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield PMC-OA sub-figure/caption records.

    Args:
        source (`SourceConfig`):
            `path` is the dataset folder; options `jsonl` (list of file names) and `image_dir`.
    """
    root = require_dir(Path(source.path), "pmc_oa")
    findings = read_findings_sidecar(root)
    image_dir = root / source.option("image_dir", "images")
    names = source.option("jsonl") or (
        ["pmc_oa.jsonl"] if (root / "pmc_oa.jsonl").is_file() else [f"{s}.jsonl" for s in ("train", "valid", "test")]
    )
    if source.splits and not source.option("jsonl"):
        names = [f"{s}.jsonl" for s in source.splits]
    files = [root / n for n in names if (root / n).is_file()]
    if not files:
        raise MedvlError(f"source 'pmc_oa': none of {names} under {root}")
    for file in files:
        for line_number, row in read_jsonl(file, what="a JSON object with 'image' and 'caption'"):
            if "image" not in row:
                raise MedvlError(
                    f"{file}:{line_number}: no 'image' field; expected a JSON object with 'image' and 'caption'"
                )
            image_name = str(row["image"])
            pmcid = row.get("pmcid") or image_name.split("_", 1)[0]
            yield RawRecord(
                id=image_name,
                text=row.get("caption") or "",
                image=image_dir / image_name,
                group_id=f"pmc_oa:{pmcid}",
                license="other",
                findings=findings.get(image_name, []),
                file=f"{file}:{line_number}",
                meta={"url_name": row.get("url_name")},
            )
