# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Source adapters: one module per public on-disk format, registered by name.

An adapter is a function `(source: SourceConfig) -> Iterator[RawRecord]` decorated with `@register_source("name")`.
It only reads the format (ids, captions/reports, image references, groups, licences); decoding, cleaning,
de-duplication and splitting happen in `medvl_recipes.data.prepare`. Adding a source is one new module in this
package: every module here is imported on first use of the registry, so its decorator runs.

Adapters yield a `RawRecord` even for a record they cannot use (e.g. an Open-I report without images) with
`drop_reason` set, so that nothing is silently dropped: prepare counts it under that reason. Each adapter declares
the `options` it accepts (anything else is an error naming the valid ones) and the release `layouts` it reads,
which prepare quotes when a source reads or keeps nothing.
"""

import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import read_jsonl


if TYPE_CHECKING:
    from medvl_recipes.data.mixture import SourceConfig

logger = logging.getLogger(__name__)

SourceAdapter = Callable[["SourceConfig"], Iterator["RawRecord"]]
_REGISTRY: dict[str, SourceAdapter] = {}
_SPECS: dict[str, "SourceSpec"] = {}
_DISCOVERED = False


@dataclass
class RawRecord:
    """One image-text pair as read from a source, before cleaning.

    Args:
        id (`str`):
            The source's own record id (ROCO_ID, ROCOv2 image_id, MedPix image name, Open-I image id, ...).
        text (`str`):
            The raw caption or report.
        image (`pathlib.Path`, `bytes` or `None`):
            Path to the image file (any PIL format or DICOM) or its encoded bytes; `None` when the record has none.
        group_id (`str`):
            Records that must land in the same split share it (study, report, case or article).
        license (`str`):
            Licence of this record (SPDX-like lower case id, e.g. `cc-by-4.0`).
        findings (`list[dict]`, *optional*):
            Structured findings `{"finding", "site", "present"}` where the source provides them.
        modality (`str`, *optional*):
            Canonical modality (`CT`, `MR`, `CR`, `DX`, `XR`, ...) where the source states it.
        file (`str`, *optional*):
            Where the record came from (file, or file and row), for error messages.
        meta (`dict`, *optional*):
            Source-specific extras (keywords, CUIs, views) that do not go into the prepared dataset.
        drop_reason (`str`, *optional*):
            Set by the adapter when the record is unusable as read (e.g. `no_image`).
        changes (`list[str]`, *optional*):
            What reading changed (e.g. `text_decoded_cp1252`), counted by prepare like cleaning's changes.
    """

    id: str
    text: str
    image: Path | bytes | None
    group_id: str
    license: str
    findings: list[dict] = field(default_factory=list)
    modality: str | None = None
    file: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    drop_reason: str | None = None
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceSpec:
    """What an adapter accepts and reads: its `options` keys and a one-line description of its layouts."""

    options: frozenset[str]
    layouts: str


def register_source(
    name: str, *, options: tuple[str, ...] = (), layouts: str = ""
) -> Callable[[SourceAdapter], SourceAdapter]:
    """Register a source adapter under `name` (the `type` key of a mixture YAML source).

    Args:
        name (`str`):
            The adapter's name; must be unique.
        options (`tuple[str, ...]`, *optional*):
            The keys the adapter reads from `options`; any other key is an error.
        layouts (`str`, *optional*):
            The on-disk layouts it knows, quoted in the error when a source reads or keeps 0 records.
    """

    def decorator(fn: SourceAdapter) -> SourceAdapter:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"source adapter {name!r} is registered twice")
        _REGISTRY[name] = fn
        _SPECS[name] = SourceSpec(frozenset(options), layouts)
        return fn

    return decorator


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _DISCOVERED = True


def available_sources() -> list[str]:
    """Names of all registered source adapters."""
    _discover()
    return sorted(_REGISTRY)


def get_source_adapter(name: str) -> SourceAdapter:
    """Return the adapter registered as `name`.

    Args:
        name (`str`):
            A name from `available_sources()`.
    """
    _discover()
    if name not in _REGISTRY:
        raise MedvlError(f"unknown source type {name!r}; choose one of {available_sources()}")
    return _REGISTRY[name]


def get_source_spec(name: str) -> SourceSpec:
    """Return the options and layouts the adapter `name` declared.

    Args:
        name (`str`):
            A name from `available_sources()`.
    """
    get_source_adapter(name)
    return _SPECS[name]


def check_source_options(source: "SourceConfig") -> None:
    """Raise a `MedvlError` naming the first unknown key under `options` and the keys the adapter accepts.

    A misspelled key (`subset:` for `subsets:`) would otherwise be ignored and the default used in silence.

    Args:
        source (`SourceConfig`):
            The source as configured.
    """
    spec = get_source_spec(source.type)
    unknown = sorted(set(source.options) - spec.options)
    if unknown:
        valid = sorted(spec.options) or "none"
        raise MedvlError(
            f"source {source.name!r} (type {source.type}): unknown option(s) {unknown} under `options`; "
            f"valid options: {valid}"
        )


def read_findings_sidecar(root: Path) -> dict[str, list[dict]]:
    """Read `root/findings.jsonl` (`{"id": ..., "findings": [...]}` per line) into `{id: findings}`.

    Args:
        root (`pathlib.Path`):
            The source folder. A missing sidecar gives an empty mapping.
    """
    path = Path(root) / "findings.jsonl"
    if not path.is_file():
        return {}
    findings: dict[str, list[dict]] = {}
    for line_number, row in read_jsonl(path):
        try:
            findings[str(row["id"])] = [
                {"finding": str(f["finding"]), "site": f.get("site"), "present": parse_present(f.get("present", True))}
                for f in row.get("findings") or []
            ]
        except (KeyError, TypeError, ValueError) as err:
            raise MedvlError(
                f"{path}:{line_number}: expected {{'id': str, 'findings': [{{'finding', 'site', 'present'}}]}} ({err})"
            ) from err
    return findings


_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


def parse_present(value) -> bool:
    """A finding's `present` flag: a JSON bool, or one of true/false/yes/no/1/0 in any case; never `bool("false")`."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"'present' must be true or false, got {value!r}")


def require_dir(path: Path, source_type: str) -> Path:
    """Raise a `MedvlError` naming the source when its folder is missing."""
    if not Path(path).is_dir():
        raise MedvlError(f"source {source_type!r}: folder {path} does not exist; check `path` / `--data-root`")
    return Path(path)


def normalise_license(value: str | None, default: str = "unknown") -> str:
    """Map licence spellings found in source metadata (`CC BY`, `CC BY-NC-SA`) to lower-case ids (`cc-by`)."""
    if value is None or not str(value).strip():
        return default
    return "-".join(str(value).strip().lower().replace("_", " ").replace("-", " ").split())
