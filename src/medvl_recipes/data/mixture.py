# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The dataset mixture recipe (`recipes/data/<mixture>.yaml`) as small validated dataclasses.

```yaml
# Data arguments
data_root: outputs/quickstart/raw   # relative source paths resolve against it; `--data-root` overrides it
seed: 0
val_fraction: 0.05
sources:
  - type: openi                     # a name from `medvl_recipes.data.sources.available_sources()`
    path: openi                     # folder/file, or a Hub id for `type: hub`
    name: openi                     # value of the `source` column; defaults to `type`
    text_field: findings            # adapter-specific: openi findings|impression|both, medpix caption|findings|both
    weight: 1.0                     # fraction of the source's records kept (seeded, per record)
    max_samples: null               # keep at most this many (in the source's own order)
    license: null                   # overrides the licence the adapter reads or assumes
    options: {}                     # other adapter-specific keys
cleaning: {min_words: 3, max_words: 400, deid_action: mask, max_side: 512}
dedup: {near_duplicate_threshold: 4, group_identical_reports: true, template_min_groups: 10}
```
"""

import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from medvl_recipes.errors import MedvlError


def _check_keys(cls: type, data: Any, where: str) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping with keys {[f.name for f in fields(cls)]}, got {data!r}")
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected keys among {sorted(known)}")
    return data


@dataclass
class SourceConfig:
    """One raw source of a mixture.

    Args:
        type (`str`):
            Adapter name (`roco`, `rocov2`, `medpix`, `openi`, `pmc_oa`, `hub`, `imagefolder`, `dicom`, ...).
        path (`str`):
            Folder or file of the source, relative to `data_root` unless absolute; a Hub id for `type: hub`.
        name (`str`, *optional*):
            Value of the `source` column; defaults to `type`. Must be unique within the mixture.
        text_field (`str`, *optional*):
            Which text the adapter uses (Open-I `findings|impression|both`, MedPix `caption|findings|both`).
        weight (`float`, *optional*, defaults to `1.0`):
            Fraction in (0, 1] of the source's records kept, chosen per record from a hash of the seed and id.
            Oversampling belongs to training, not to the prepared dataset.
        max_samples (`int`, *optional*):
            Keep at most this many records, in the source's own order (applied after `weight`).
        license (`str`, *optional*):
            Licence for every record of the source, overriding what the adapter reads or assumes.
        splits (`list[str]`, *optional*):
            The source's own splits to read (e.g. `[train, validation]`); all that exist by default. The
            prepared split is always recomputed (group-aware), so source splits only select what to read.
        options (`dict`, *optional*):
            Other adapter-specific keys (see the adapter's docstring).
    """

    type: str
    path: str
    name: str | None = None
    text_field: str | None = None
    weight: float = 1.0
    max_samples: int | None = None
    license: str | None = None
    splits: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        where = f"sources[{self.name or self.type}]"
        if not isinstance(self.type, str) or not self.type:
            raise ValueError(f"{where}.type: expected an adapter name (str), got {self.type!r}")
        if not isinstance(self.path, str | Path) or not str(self.path):
            raise ValueError(f"{where}.path: expected a folder, file or Hub id (str), got {self.path!r}")
        self.path = str(self.path)
        self.name = self.name or self.type
        if not isinstance(self.weight, int | float) or not 0 < float(self.weight) <= 1 or math.isnan(self.weight):
            raise ValueError(f"{where}.weight: expected a number in (0, 1], got {self.weight!r}")
        self.weight = float(self.weight)
        if self.max_samples is not None and (not isinstance(self.max_samples, int) or self.max_samples < 1):
            raise ValueError(f"{where}.max_samples: expected a positive integer or null, got {self.max_samples!r}")
        if self.splits is not None and (
            not isinstance(self.splits, list) or not all(isinstance(s, str) for s in self.splits)
        ):
            raise ValueError(f"{where}.splits: expected a list of split names, got {self.splits!r}")
        if not isinstance(self.options, dict):
            raise ValueError(f"{where}.options: expected a mapping, got {self.options!r}")

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass
class CleaningConfig:
    """Text and image cleaning.

    Args:
        min_words (`int`, *optional*, defaults to `3`):
            Texts with fewer words after cleaning are dropped (`text_too_short`).
        max_words (`int`, *optional*, defaults to `400`):
            Texts with more words are dropped (`text_too_long`).
        deid_patterns (`list[str]`, *optional*):
            Regular expressions of de-identification placeholders (Open-I `XXXX`, MIMIC `___`).
        deid_action (`str`, *optional*, defaults to `"mask"`):
            `mask` replaces each placeholder with `deid_mask`; `drop_sentence` removes sentences holding one;
            `keep` leaves them.
        deid_mask (`str`, *optional*, defaults to `"___"`):
            Replacement for `deid_action: mask`.
        junk_texts (`list[str]`, *optional*):
            Whole texts (case-insensitive, after cleaning) that are placeholders, not captions (`junk_text`).
        min_side (`int`, *optional*, defaults to `16`):
            Images with a smaller side are dropped (`image_too_small`).
        max_side (`int`, *optional*):
            Images with a longer side are downscaled to it (counted as `image_resized`); `null` keeps the size.
        max_pixels (`int`, *optional*, defaults to `178956970`):
            Images with more pixels are refused as decompression bombs (`decompression_bomb`).
        phi_patterns (`list[str]`, *optional*):
            Regular expressions of identifiers that must not reach a published dataset (full dates, MRN- and
            accession-like numbers); a text still matching one after de-identification is dropped as
            `phi_suspected`. Mask such values in the source (`deid_patterns`) to keep the record.
        phi_action (`str`, *optional*, defaults to `"drop"`):
            `drop` (count under `phi_suspected`) or `keep` (for data already de-identified by its publisher).
    """

    min_words: int = 3
    max_words: int = 400
    deid_patterns: list[str] = field(default_factory=lambda: [r"X{3,}", r"_{3,}", r"\[\*\*[^\]]*\*\*\]"])
    deid_action: str = "mask"
    deid_mask: str = "___"
    junk_texts: list[str] = field(
        default_factory=lambda: [
            "in progress",
            "n/a",
            "na",
            "none",
            "image",
            "see text",
            "tbd",
            "pending",
            "not available",
            # MedPix 2.0's authoring template, left in 21 captions (splitted_dataset/descriptions_*.jsonl).
            "replace this - description of the image or findings",
            "replace this",
            "no caption",
            "caption",
            "figure",
        ]
    )
    min_side: int = 16
    max_side: int | None = 512
    max_pixels: int = 178_956_970
    phi_patterns: list[str] = field(
        default_factory=lambda: [
            # Full numeric dates (DICOM PS3.15 Annex E removes every date): 03/12/2014, 2014-12-03, 20141203.
            r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}\b",
            r"\b(?:19|20)\d{2}[/.-]?(?:0[1-9]|1[0-2])[/.-]?(?:0[1-9]|[12]\d|3[01])\b",
            # Record numbers named as such, and long digit runs (MRNs are typically 6-10 digits).
            r"(?i)\b(?:mrn|medical record(?: number| no\.?)?|patient id|accession(?: number| no\.?)?)\W{0,3}\w*\d{4,}",
            r"\b\d{7,}\b",
        ]
    )
    phi_action: str = "drop"

    def __post_init__(self):
        for key in ("min_words", "max_words", "min_side", "max_pixels"):
            value = getattr(self, key)
            # bool is an int in Python: `max_side: true` must not become a 1-pixel limit.
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"cleaning.{key}: expected a non-negative integer, got {value!r}")
        if self.max_words < self.min_words:
            raise ValueError(f"cleaning.max_words: expected >= min_words ({self.min_words}), got {self.max_words}")
        if self.max_side is not None and (
            isinstance(self.max_side, bool) or not isinstance(self.max_side, int) or self.max_side < self.min_side
        ):
            raise ValueError(f"cleaning.max_side: expected an integer >= min_side or null, got {self.max_side!r}")
        if self.deid_action not in {"mask", "drop_sentence", "keep"}:
            raise ValueError(f"cleaning.deid_action: expected mask|drop_sentence|keep, got {self.deid_action!r}")
        if self.phi_action not in {"drop", "keep"}:
            raise ValueError(f"cleaning.phi_action: expected drop|keep, got {self.phi_action!r}")
        for key in ("deid_patterns", "junk_texts", "phi_patterns"):
            value = getattr(self, key)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"cleaning.{key}: expected a list of strings, got {value!r}")
        for key in ("deid_patterns", "phi_patterns"):
            for pattern in getattr(self, key):
                try:
                    re.compile(pattern)
                except re.error as err:
                    raise ValueError(f"cleaning.{key}: {pattern!r} is not a valid regular expression ({err})") from err


@dataclass
class DedupConfig:
    """De-duplication and leakage control.

    Args:
        near_duplicate_threshold (`int`, *optional*, defaults to `4`):
            Two images whose 64-bit perceptual hashes differ in at most this many bits are near-duplicates.
            `-1` turns near-duplicate detection off.
        group_identical_reports (`bool`, *optional*, defaults to `true`):
            Records whose normalised texts are identical are kept in the same split.
        drop_exact_duplicates (`bool`, *optional*, defaults to `true`):
            A record whose image pixels and normalised text both equal an earlier record's is dropped
            (`duplicate_pair`); other duplicates are kept and grouped.
        template_min_groups (`int`, *optional*, defaults to `10`):
            A normalised text shared by more than this many source groups (studies, figures, cases) is a template
            ("The heart is normal in size. The lungs are clear." in IU X-Ray), not evidence that those records
            are one study: it does not merge their groups, and its share per split is reported. Texts shared by
            fewer groups (ROCO and ROCOv2 captions of one figure) are still grouped. `0` turns this off.
    """

    near_duplicate_threshold: int = 4
    group_identical_reports: bool = True
    drop_exact_duplicates: bool = True
    template_min_groups: int = 10

    def __post_init__(self):
        if not isinstance(self.near_duplicate_threshold, int) or not -1 <= self.near_duplicate_threshold <= 32:
            raise ValueError(
                f"dedup.near_duplicate_threshold: expected an integer in [-1, 32], got {self.near_duplicate_threshold!r}"
            )
        if (
            not isinstance(self.template_min_groups, int)
            or isinstance(self.template_min_groups, bool)
            or self.template_min_groups < 0
        ):
            raise ValueError(
                f"dedup.template_min_groups: expected a non-negative integer, got {self.template_min_groups!r}"
            )
        for key in ("group_identical_reports", "drop_exact_duplicates"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"dedup.{key}: expected true or false, got {getattr(self, key)!r}")


@dataclass
class DatasetMixtureConfig:
    """A dataset mixture recipe: which raw sources, how to clean, de-duplicate and split them.

    Args:
        sources (`list[SourceConfig]`):
            The raw sources (dicts are turned into `SourceConfig`).
        data_root (`str`, *optional*):
            Folder that relative source paths resolve against (`--data-root` overrides it).
        val_fraction (`float`, *optional*, defaults to `0.05`):
            Fraction of each source's records put in the validation split (to within one group).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the split and of `weight` sampling.
        num_proc (`int`, *optional*, defaults to `2`):
            Worker processes for decoding, hashing and encoding.
        cleaning (`CleaningConfig`, *optional*):
            Text and image cleaning options.
        dedup (`DedupConfig`, *optional*):
            De-duplication options.
        dataset_name (`str`, *optional*):
            Pretty name for the dataset card.
    """

    sources: list[SourceConfig]
    data_root: str | None = None
    val_fraction: float = 0.05
    seed: int = 0
    num_proc: int = 2
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    dataset_name: str | None = None

    def __post_init__(self):
        if not isinstance(self.sources, list) or not self.sources:
            raise ValueError("sources: expected a non-empty list of {type: ..., path: ...} mappings")
        parsed = []
        for index, source in enumerate(self.sources):
            if isinstance(source, SourceConfig):
                parsed.append(source)
                continue
            data = _check_keys(SourceConfig, source, f"sources[{index}]")
            missing = [key for key in ("type", "path") if key not in data]
            if missing:
                raise ValueError(f"sources[{index}]: missing key(s) {missing}; expected {{type: str, path: str, ...}}")
            parsed.append(SourceConfig(**data))
        self.sources = parsed
        names = [s.name for s in self.sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"sources: duplicate name(s) {duplicated}; give each source a unique `name`")
        if not isinstance(self.val_fraction, int | float) or not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction: expected a number in [0, 1), got {self.val_fraction!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed: expected an integer, got {self.seed!r}")
        if not isinstance(self.num_proc, int) or self.num_proc < 1:
            raise ValueError(f"num_proc: expected a positive integer, got {self.num_proc!r}")
        if self.cleaning is None:
            self.cleaning = CleaningConfig()
        elif not isinstance(self.cleaning, CleaningConfig):
            self.cleaning = CleaningConfig(**_check_keys(CleaningConfig, self.cleaning, "cleaning"))
        if self.dedup is None:
            self.dedup = DedupConfig()
        elif not isinstance(self.dedup, DedupConfig):
            self.dedup = DedupConfig(**_check_keys(DedupConfig, self.dedup, "dedup"))

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetMixtureConfig":
        """Build from a parsed YAML mapping, rejecting unknown keys."""
        data = _check_keys(cls, data, "mixture")
        if "sources" not in data:
            raise ValueError("mixture: missing key 'sources'; expected a list of {type: ..., path: ...} mappings")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def resolve_path(self, source: SourceConfig, data_root: str | Path | None = None) -> Path | str:
        """Resolve a source path against `data_root` (argument, else the `data_root` key, else the cwd).

        A `hub` source whose path does not exist locally is returned unchanged (a Hub id), unless the path looks
        local (starts with `.`, `/` or `~`, ends in `.parquet`, or its parent folder exists): a typo in a local
        path must not become a Hub download.

        Raises:
            `MedvlError`: for a `hub` path that looks local and does not exist.
        """
        root = data_root if data_root is not None else self.data_root
        path = Path(source.path).expanduser()
        if not path.is_absolute() and root is not None:
            path = Path(root).expanduser() / path
        if source.type == "hub" and not path.exists():
            looks_local = (
                source.path.startswith((".", "/", "~"))
                or source.path.endswith(".parquet")
                or (len(Path(source.path).parts) > 1 and path.parent.is_dir())
            )
            if looks_local:
                raise MedvlError(
                    f"source {source.name!r} (hub): {path} does not exist; a path starting with '.', '/' or '~', "
                    "ending in .parquet or inside an existing folder is local, not a Hub id. Fix the path."
                )
            return source.path
        return path


def load_mixture_config(path: str | Path) -> DatasetMixtureConfig:
    """Read a mixture YAML into a `DatasetMixtureConfig`.

    Args:
        path (`str` or `pathlib.Path`):
            The YAML file.
    """
    path = Path(path)
    if not path.is_file():
        raise MedvlError(f"mixture config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise MedvlError(f"{path}: not valid YAML ({err})") from err
    try:
        return DatasetMixtureConfig.from_dict(data or {})
    except MedvlError:
        raise
    except (ValueError, TypeError) as err:
        raise MedvlError(f"{path}: {err}") from err
