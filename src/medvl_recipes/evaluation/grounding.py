# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Whether generated reports depend on the image: the study parser and the image-swap control.

A decoder that ignores its image can still score well on text metrics by writing the most common report. Three
checks expose it (the metrics are registered in `metrics.py`):

- the share of distinct generations (one constant report gives 1/n);
- modality and body-region agreement: `StudyParser` reads which modality ("CT", "MR", "XR", ...) and region
  ("chest", "head", ...) a report names, from rules kept as data (`study_rules.yaml`), and the generation is
  compared with the reference (or with the dataset's DICOM `modality` column when the reference names none);
- the image-swap control: the same samples generated again with each image replaced by another sample's image (a
  seeded derangement, so no sample keeps its own). A grounded decoder loses most of its finding F1; one that ignores
  the image loses nothing.
"""

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

_BOUNDARY_LEFT, _BOUNDARY_RIGHT = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"


@dataclass(frozen=True)
class Study:
    """What a report says about the study: modality class and body region (None when it names none)."""

    modality: str | None
    region: str | None


class StudyParser:
    """Rule-based modality and body-region parser (rules from `study_rules.yaml`, or a YAML of the same shape).

    Args:
        rules (`str` or `Path`, *optional*): a rules YAML; the packaged default when None.

    Example:
        >>> StudyParser().parse("Axial CT of the head. No skull fracture.")
        Study(modality='CT', region='head')
    """

    def __init__(self, rules: str | Path | None = None):
        if rules is None:
            text = resources.files("medvl_recipes.evaluation").joinpath("study_rules.yaml").read_text("utf-8")
            source = "study_rules.yaml"
        else:
            path = Path(rules)
            if not path.is_file():
                raise MedvlError(f"study rules {path}: no such file")
            text, source = path.read_text(encoding="utf-8"), str(path)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise MedvlError(f"study rules {source}: not valid YAML ({err})") from err
        for key in ("version", "modalities", "regions", "dicom_modalities"):
            if not isinstance(data, dict) or key not in data:
                raise MedvlError(f"study rules {source}: missing top-level key {key!r}")
        self.version = str(data["version"])
        case_sensitive = set(data.get("case_sensitive") or [])
        self._modalities = self._compile(data["modalities"], case_sensitive, source)
        self._regions = self._compile(data["regions"], case_sensitive, source)
        self._region_cues = self._compile(data.get("region_cues") or {}, case_sensitive, source)
        self.dicom_modalities = {str(k).upper(): str(v) for k, v in data["dicom_modalities"].items()}

    @staticmethod
    def _compile(classes: dict, case_sensitive: set, source: str) -> list[tuple[str, re.Pattern]]:
        compiled = []
        for name, patterns in classes.items():
            for pattern in patterns:
                flags = 0 if pattern in case_sensitive else re.IGNORECASE
                try:
                    compiled.append((str(name), re.compile(f"{_BOUNDARY_LEFT}(?:{pattern}){_BOUNDARY_RIGHT}", flags)))
                except re.error as err:
                    raise MedvlError(f"study rules {source}: class {name!r}: bad pattern {pattern!r} ({err})") from err
        return compiled

    @staticmethod
    def _earliest(text: str, compiled: list[tuple[str, re.Pattern]]) -> str | None:
        best, best_pos = None, len(text) + 1
        for name, pattern in compiled:
            match = pattern.search(text)
            if match and match.start() < best_pos:
                best, best_pos = name, match.start()
        return best

    def modality(self, text: str) -> str | None:
        """The modality class the text names first (e.g. "CT"), or None."""
        return self._earliest(text or "", self._modalities)

    def region(self, text: str) -> str | None:
        """The body region the text names first; anatomy cues only when no region word occurs; or None."""
        text = text or ""
        return self._earliest(text, self._regions) or self._earliest(text, self._region_cues)

    def parse(self, text: str) -> Study:
        """Modality and region of one report."""
        return Study(self.modality(text), self.region(text))

    def dicom_modality(self, code: str | None) -> str | None:
        """Map a DICOM Modality code ("CR", "DX", "CT", ...) to a modality class, or None when unknown/empty."""
        if not code:
            return None
        return self.dicom_modalities.get(str(code).strip().upper())

    @property
    def signature(self) -> str:
        return f"medvl-study-rules:{self.version}"


def agreement_stats(
    parser: StudyParser,
    generations: Sequence[str],
    references: Sequence[str],
    dataset_modalities: Sequence[str | None] | None = None,
    *,
    field: str,
) -> np.ndarray:
    """Per-sample agreement of the modality or region a generation names with its reference's, as (N, 2).

    Column 0 is 1 when both name the same class, column 1 is 1 when the sample is scored. The reference class comes
    from the reference text, or (modality only) from the dataset's DICOM `modality` column when the text names none.
    A sample is scored when the reference class is known, except when only the column knows it and the generation
    names none either (neither text states it: e.g. Open-I findings without a header).

    Args:
        parser (`StudyParser`): the rules.
        generations, references (`Sequence[str]`): generated and reference reports.
        dataset_modalities (`Sequence[str | None]`, *optional*): the dataset's `modality` column.
        field (`str`): "modality" or "region".
    """
    if field not in ("modality", "region"):
        raise ValueError(f"field must be 'modality' or 'region', got {field!r}")
    read = parser.modality if field == "modality" else parser.region
    stats = np.zeros((len(generations), 2))
    for i, (generation, reference) in enumerate(zip(generations, references, strict=True)):
        ref_class, gen_class = read(reference), read(generation)
        from_column = False
        if ref_class is None and field == "modality" and dataset_modalities is not None:
            ref_class, from_column = parser.dicom_modality(dataset_modalities[i]), True
        if ref_class is None or (from_column and gen_class is None):
            continue
        stats[i] = (float(gen_class == ref_class), 1.0)
    return stats


def distinct_stats(generations: Sequence[str]) -> np.ndarray:
    """Per-sample `1 / (how many samples got the same text)` (N, 1), texts whitespace/case-normalised.

    Their mean is the share of distinct generations, and it stays that share on a bootstrap resample: the count of
    distinct texts in a resample divided by its size is not (a resample of a few repeated reports holds fewer
    samples but nearly as many distinct texts, so it overstates the share and the interval missed the value).
    """
    keys = [" ".join(text.lower().split()) for text in generations]
    counts = Counter(keys)
    return np.asarray([1.0 / counts[key] for key in keys], dtype=np.float64).reshape(len(keys), 1)


def distinct_share(stats: np.ndarray) -> float:
    """Share of distinct generations from `distinct_stats` rows (of all samples, or of a bootstrap resample)."""
    stats = np.asarray(stats)
    return float(stats[:, 0].mean()) if len(stats) else float("nan")


def swap_derangement(n: int, seed: int = 0) -> np.ndarray:
    """A seeded random permutation without fixed points: sample `i` gets the image of sample `perm[i] != i`.

    Sattolo's algorithm (a uniformly random n-cycle), so the control never gives a sample its own image.

    Args:
        n (`int`): number of samples (at least 2).
        seed (`int`, *optional*, defaults to 0): seed of the `numpy` generator.
    """
    if n < 2:
        raise MedvlError(f"the image-swap control needs at least 2 samples, got {n}; pass --no_image_swap_control")
    rng = np.random.default_rng([seed, 0x5A4F])
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def image_swap_generations(
    generate: Callable[[list], list[str]],
    images: Sequence,
    *,
    seed: int = 0,
    batch_size: int = 8,
    done: Mapping[int, str] | None = None,
    on_batch: Callable[[list[int], list[str]], None] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Generate each sample's report from another sample's image (the image-swap control).

    Args:
        generate (`Callable[[list], list[str]]`): images -> one report each (the decoder's batched generation).
        images (`Sequence`): the samples' own images, in sample order.
        seed (`int`, *optional*, defaults to 0): seed of the derangement.
        batch_size (`int`, *optional*, defaults to 8): images per `generate` call.
        done (`Mapping[int, str]`, *optional*): sample index -> swapped generation already made (a resumed run);
            only the others are generated.
        on_batch (`Callable[[list[int], list[str]], None]`, *optional*): called with each batch's sample indices and
            reports as soon as they are generated (to write them to disk).

    Returns:
        `(generations, perm)`: report `i` was generated from `images[perm[i]]`.
    """
    perm = swap_derangement(len(images), seed)
    out = dict(done or {})
    todo = [i for i in range(len(perm)) if i not in out]
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        texts = generate([images[int(perm[i])] for i in rows])
        if len(texts) != len(rows):
            raise MedvlError(f"generation returned {len(texts)} reports for {len(rows)} images")
        out.update(zip(rows, texts, strict=True))
        if on_batch is not None:
            on_batch(rows, texts)
    return [out[i] for i in range(len(perm))], perm
