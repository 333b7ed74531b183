# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""ROCO v1 (razorx89/roco-dataset) folder layout.

```
<path>/data/<split>/<subset>/captions.txt   ROCO_ID<TAB><SPACE>caption
                             keywords*.txt  ROCO_ID<TAB><TAB>kw1<TAB>kw2...   (also cuis*.txt)
                             licences.txt   ROCO_ID,PMC_ID,CC   (test: cc_tp_test.csv)
                             dlinks*.txt    ROCO_ID<TAB>wget -r ftp://.../PMC3970251.tar.gz -P dir<TAB>image.jpg
                             images/        <PMCID>_<image name>
```
`<path>` may also be the `data` folder itself. Options: `subsets` (defaults to `[radiology]`). Records are grouped
by PMC article (figures of one paper are related); the licence comes from the CC column per record.
"""

import csv
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


def _read_tab_file(path: Path) -> dict[str, list[str]]:
    """Read `ID<TAB><TAB>v1<TAB>v2` lines; the empty field after the id is an artefact of the release."""
    values: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        roco_id, *rest = line.split("\t")
        values[roco_id.strip()] = [v.strip() for v in rest if v.strip()]
    return values


def _first(folder: Path, *patterns: str) -> Path | None:
    for pattern in patterns:
        matches = sorted(folder.glob(pattern))
        if matches:
            return matches[0]
    return None


def _image_names(folder: Path) -> dict[str, tuple[str, str | None]]:
    """Map ROCO_ID -> (image file name, licence) from licences.txt / cc_tp_test.csv, else from dlinks."""
    names: dict[str, tuple[str, str | None]] = {}
    licences = _first(folder, "licences*.txt", "cc_*.csv")
    if licences is not None:
        with licences.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                names[row["ROCO_ID"].strip()] = (row["PMC_ID"].strip(), row.get("CC"))
    dlinks = _first(folder, "dlinks*.txt")
    if dlinks is not None:
        for line in dlinks.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or parts[0].strip() in names:
                continue
            # Same parsing as the release's scripts/fetch.py.
            archive_url = parts[1].split(" ")[2]
            pmc_id = archive_url.split("/")[-1][: -len(".tar.gz")]
            names[parts[0].strip()] = (f"{pmc_id}_{parts[-1].strip()}", None)
    return names


@register_source("roco")
def load_roco(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield ROCO v1 records. See the module docstring for the layout.

    Args:
        source (`SourceConfig`):
            `path` is the repository (or its `data` folder); `splits` defaults to all of train/validation/test.
    """
    root = require_dir(Path(source.path), "roco")
    data = root / "data" if (root / "data").is_dir() else root
    findings = read_findings_sidecar(root)
    subsets = source.option("subsets", ["radiology"])
    splits = source.splits or ["train", "validation", "test"]
    for split in splits:
        for subset in subsets:
            folder = data / split / subset
            captions_file = folder / "captions.txt"
            if not captions_file.is_file():
                continue
            keywords_file = _first(folder, "keywords*.txt")
            keywords = _read_tab_file(keywords_file) if keywords_file else {}
            cuis_file = _first(folder, "cuis*.txt")
            cuis = _read_tab_file(cuis_file) if cuis_file else {}
            names = _image_names(folder)
            with captions_file.open(encoding="utf-8") as handle:
                for line_number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    roco_id, _, caption = line.rstrip("\n").partition("\t")
                    roco_id = roco_id.strip()
                    image_name, licence = names.get(roco_id, (None, None))
                    record = RawRecord(
                        id=roco_id,
                        # The caption field starts with a space in the release.
                        text=caption.strip(),
                        image=folder / "images" / image_name if image_name else None,
                        group_id=f"roco:{image_name.split('_', 1)[0]}" if image_name else f"roco:{roco_id}",
                        license=normalise_license(licence, default="unknown"),
                        findings=findings.get(roco_id, []),
                        file=f"{captions_file}:{line_number}",
                        meta={"keywords": keywords.get(roco_id, []), "cuis": cuis.get(roco_id, []), "split": split},
                    )
                    if image_name is None:
                        record.drop_reason = "no_image"
                    yield record
