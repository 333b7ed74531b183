# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""PMC-OA (Hub dataset `axiong/pmc_oa`): JSONL of `{"image", "caption", ...}` plus images.

Row fields: `image`, `caption`, `alignment_type`, `alignment_score` in `pmc_oa.jsonl` (the dataset's loading script
`pmc_oa.py` at revision d42b8f9160fb558b7dd82ee44718afcf73277adc; the alignment fields are undocumented and ignored
here), `pmcid` and `url_name` in the older `train.jsonl` (README at revision 6f2a1e08e5b867a1272583368395ad0b18bbc366).

Files of the Hub dataset: `pmc_oa.jsonl` (sub-figure/sub-caption pairs), `pmc_oa_beta.jsonl` (whole captions)
and `images.zip`; an older revision had `train.jsonl`, `valid.jsonl`, `test.jsonl`. `images.zip` unpacks to
`caption_T060_filtered_top4_sep_v0_subfigures/` (the loading script opens `<images.zip extracted>/
caption_T060_filtered_top4_sep_v0_subfigures/<image>`; consumers that unzip into `images/` read `<root>/images/
caption_T060_filtered_top4_sep_v0_subfigures/<image>`), so the images are looked up in option `image_dir` when
set, else in the first of `images/caption_T060_filtered_top4_sep_v0_subfigures/`,
`caption_T060_filtered_top4_sep_v0_subfigures/` and `images/` that exists. Option `jsonl` names other files
(e.g. `[pmc_oa_beta.jsonl]`). Records are grouped by article (`pmcid`, else the `PMC...` prefix of the image
name). Licence defaults to `other` (PMC open-access articles carry per-article CC licences) unless set in the recipe.
"""

from collections.abc import Iterator
from pathlib import Path

from medvl_recipes.data.mixture import SourceConfig
from medvl_recipes.data.sources import RawRecord, read_findings_sidecar, register_source, require_dir
from medvl_recipes.data.text_files import read_jsonl_utf8
from medvl_recipes.errors import MedvlError


ZIP_FOLDER = "caption_T060_filtered_top4_sep_v0_subfigures"
IMAGE_DIRS = (f"images/{ZIP_FOLDER}", ZIP_FOLDER, "images")
LAYOUTS = (
    f"<path>/pmc_oa.jsonl (or train/valid/test.jsonl) with images in <path>/images/{ZIP_FOLDER}/, "
    f"<path>/{ZIP_FOLDER}/ (images.zip unpacked), <path>/images/ or options.image_dir"
)


def _image_dir(root: Path, source: SourceConfig) -> Path:
    configured = source.option("image_dir")
    if configured is not None:
        if not (root / configured).is_dir():
            raise MedvlError(f"source {source.name!r} (pmc_oa): options.image_dir {root / configured} is not a folder")
        return root / configured
    return next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), root / IMAGE_DIRS[0])


@register_source("pmc_oa", options=("jsonl", "image_dir"), layouts=LAYOUTS)
def load_pmc_oa(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield PMC-OA sub-figure/caption records.

    Args:
        source (`SourceConfig`):
            `path` is the dataset folder; options `jsonl` (list of file names) and `image_dir`.
    """
    root = require_dir(Path(source.path), "pmc_oa")
    findings = read_findings_sidecar(root)
    image_dir = _image_dir(root, source)
    names = source.option("jsonl") or (
        ["pmc_oa.jsonl"] if (root / "pmc_oa.jsonl").is_file() else [f"{s}.jsonl" for s in ("train", "valid", "test")]
    )
    if source.splits and not source.option("jsonl"):
        names = [f"{s}.jsonl" for s in source.splits]
    files = [root / n for n in names if (root / n).is_file()]
    if not files:
        raise MedvlError(f"source {source.name!r} (pmc_oa): none of {names} under {root}; layouts known: {LAYOUTS}")
    for file in files:
        for line_number, row in read_jsonl_utf8(file, what="a JSON object with 'image' and 'caption'"):
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
