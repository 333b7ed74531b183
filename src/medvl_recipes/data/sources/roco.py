# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""ROCO v1 (razorx89/roco-dataset) folder layout.

```
<repo>/data/<split>/<subset>/captions.txt   ROCO_ID<TAB><SPACE>caption   (test/non-radiology: captions_fp_test_revised.txt)
                             keywords*.txt  ROCO_ID<TAB><TAB>kw1<TAB>kw2...   (also cuis*.txt)
                             licences.txt   ROCO_ID,PMC_ID,CC   (some folders: cc_tp_test.csv, cc_fp_train.csv)
                             dlinks*.txt    ROCO_ID<TAB>wget -r ftp://.../PMC3970251.tar.gz -P dir<TAB>image.jpg
                             images/        written by scripts/fetch.py, see below
```
Read from the release itself (razorx89/roco-dataset, `data/validation/radiology/{captions.txt,licences.txt,
dlinks_tp_val_revised.txt}` at 4a49cbf / 5090b3c; `scripts/fetch.py`):

- image names: `scripts/fetch.py` at a1f0ad6 (the current one, since January 2022) saves
  `images/<ROCO_ID>.jpg` (`target_filename = line_parts_tab[0] + ".jpg"`); copies fetched with older versions
  (e.g. 024433e) have `images/<PMCID>_<image name>`, the `PMC_ID` column of licences.txt. Both are looked up,
  new naming first. fetch.py's `--subdir` renames `images/`: option `image_subdir`.
- `path` may be the repository root, its `data/` folder, one split folder (`data/train`) or one folder holding
  `captions.txt` (`data/train/radiology`); `splits` and option `subsets` (default `[radiology]`) select within
  the first two.

Records are grouped by PMC article (figures of one paper are related); the licence comes from the CC column.
"""

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
from medvl_recipes.data.text_files import read_csv, read_text
from medvl_recipes.errors import MedvlError


SPLITS = ("train", "validation", "test")
SUBSETS = ("radiology", "non-radiology")
LAYOUTS = (
    "<repo>/data/<split>/<subset>/captions.txt, <repo>/data/..., a split folder (data/train) or the folder holding "
    "captions.txt; images/<ROCO_ID>.jpg (fetch.py since 2022) or images/<PMCID>_<name> (older fetch.py)"
)


def _read_tab_file(path: Path) -> dict[str, list[str]]:
    """Read `ID<TAB><TAB>v1<TAB>v2` lines; the empty field after the id is an artefact of the release."""
    values: dict[str, list[str]] = {}
    for line in read_text(path, what="a ROCO tab-separated file").text.splitlines():
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


def _article_names(folder: Path) -> dict[str, tuple[str, str | None]]:
    """Map ROCO_ID -> (`<PMCID>_<image name>`, licence) from licences.txt / cc_*.csv, else from dlinks."""
    names: dict[str, tuple[str, str | None]] = {}
    licences = _first(folder, "licences*.txt", "cc_*.csv")
    if licences is not None:
        table = read_csv(licences, required=["ROCO_ID", "PMC_ID"], what="a ROCO licences file (ROCO_ID,PMC_ID,CC)")
        for _, row in table.rows:
            names[(row["ROCO_ID"] or "").strip()] = ((row["PMC_ID"] or "").strip(), row.get("CC"))
    dlinks = _first(folder, "dlinks.txt", "dlinks*.txt")
    if dlinks is not None:
        for line in read_text(dlinks, what="a ROCO dlinks file").text.splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or parts[0].strip() in names or len(parts[1].split(" ")) < 3:
                continue
            # Same parsing as the release's scripts/fetch.py (extract_image_info).
            archive_url = parts[1].split(" ")[2]
            pmc_id = archive_url.split("/")[-1][: -len(".tar.gz")]
            names[parts[0].strip()] = (f"{pmc_id}_{parts[-1].strip()}", None)
    return names


def _caption_file(folder: Path) -> Path | None:
    return _first(folder, "captions.txt", "captions*.txt")


def _folders(root: Path, splits: list[str], subsets: list[str]) -> list[tuple[str, Path]]:
    """The `(split, folder)` pairs to read, whichever level of the release `root` is."""
    if _caption_file(root) is not None:
        return [(root.parent.name if root.parent.name in SPLITS else "unknown", root)]
    if any(_caption_file(root / s) for s in (*SUBSETS, *subsets) if (root / s).is_dir()):
        split = root.name if root.name in SPLITS else "unknown"
        return [(split, root / s) for s in subsets if _caption_file(root / s)]
    data = root / "data" if (root / "data").is_dir() else root
    return [(split, data / split / s) for split in splits for s in subsets if _caption_file(data / split / s)]


@register_source("roco", options=("subsets", "image_subdir"), layouts=LAYOUTS)
def load_roco(source: SourceConfig) -> Iterator[RawRecord]:
    """Yield ROCO v1 records. See the module docstring for the layouts.

    Args:
        source (`SourceConfig`):
            `path` is the repository, its `data` folder, a split folder or a captions folder; `splits` defaults to
            all of train/validation/test; options `subsets` and `image_subdir` (default `images`).
    """
    root = require_dir(Path(source.path), "roco")
    subsets = source.option("subsets", ["radiology"])
    if isinstance(subsets, str) or not isinstance(subsets, list):
        raise MedvlError(
            f"source {source.name!r}: options.subsets must be a list such as [radiology], got {subsets!r}"
        )
    image_subdir = source.option("image_subdir", "images")
    folders = _folders(root, source.splits or list(SPLITS), subsets)
    if not folders:
        raise MedvlError(
            f"source {source.name!r} (roco): no captions.txt under {root} for splits {source.splits or list(SPLITS)} "
            f"and subsets {subsets}; layouts known: {LAYOUTS}"
        )
    findings = read_findings_sidecar(root)
    for split, folder in folders:
        captions = read_text(_caption_file(folder), what="ROCO captions (ROCO_ID<TAB>caption)")
        keywords_file = _first(folder, "keywords*.txt")
        keywords = _read_tab_file(keywords_file) if keywords_file else {}
        cuis_file = _first(folder, "cuis*.txt")
        cuis = _read_tab_file(cuis_file) if cuis_file else {}
        articles = _article_names(folder)
        images = folder / image_subdir
        for line_number, line in enumerate(captions.text.split("\n"), start=1):
            if not line.strip():
                continue
            roco_id, _, caption = line.partition("\t")
            roco_id = roco_id.strip()
            article_name, licence = articles.get(roco_id, (None, None))
            candidates = [images / f"{roco_id}.jpg"] + ([images / article_name] if article_name else [])
            image = next((p for p in candidates if p.is_file()), candidates[0])
            pmc_id = article_name.split("_", 1)[0] if article_name else None
            yield RawRecord(
                id=roco_id,
                # The caption field starts with one space (sometimes two) in the release.
                text=caption.strip(),
                image=image,
                group_id=f"roco:{pmc_id or roco_id}",
                license=normalise_license(licence, default="unknown"),
                findings=findings.get(roco_id, []),
                file=f"{captions.path}:{line_number}",
                meta={"keywords": keywords.get(roco_id, []), "cuis": cuis.get(roco_id, []), "split": split},
                changes=list(captions.changes),
            )
