# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl prepare`: clean, de-duplicate and split raw sources into a Hub-ready image-text dataset.

    medvl prepare --config recipes/data/sample.yaml --data-root outputs/quickstart/raw \
        --output-dir outputs/quickstart/dataset [--strict] [--num-proc 2]

Two streaming passes keep memory flat as the input grows:
1. index + hash: each source adapter streams records; worker processes clean the text, decode and validate the
   image, downscale it, encode it as PNG and hash it (exact pixel hash + perceptual hash). The PNG bytes go to a
   spool file on disk; the main process keeps only a small index row per record.
2. write: duplicate groups are merged with the source's own study/report groups, groups are split, and each
   split is written as parquet in row-group batches read back from the spool.
The output is loadable with `datasets.load_dataset(DIR)` and pushable as a Hub dataset repo as it is.
"""

import argparse
import hashlib
import io
import itertools
import json
import logging
import multiprocessing
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from medvl_recipes.atomic import atomic_dir
from medvl_recipes.data.cleaning import DROP_REASONS, clean_image, clean_text
from medvl_recipes.data.dedup import (
    UnionFind,
    find_near_duplicate_pairs,
    find_templates,
    leakage_report,
    normalise_report,
    perceptual_hash,
    pixel_hash,
    union_by_key,
)
from medvl_recipes.data.mixture import CleaningConfig, DatasetMixtureConfig, SourceConfig, load_mixture_config
from medvl_recipes.data.prepared import FEATURES, SPLITS
from medvl_recipes.data.sources import (
    RawRecord,
    check_source_options,
    get_source_adapter,
    get_source_spec,
    normalise_license,
    parse_present,
)
from medvl_recipes.data.split import split_groups
from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

ROW_GROUP_SIZE = 256
_BATCH_PER_WORKER = 32
# A source that keeps less than this share of what it read is flagged in the log, the summary table and the report.
LOW_KEEP_WARNING = 0.5


@dataclass
class _IndexRow:
    source: str
    id: str
    source_group: str
    license: str
    text: str
    findings: list[dict]
    modality: str | None
    pixel_hash: str
    phash: int
    offset: int
    length: int


@dataclass
class _SourceStats:
    read: int = 0
    skipped_by_weight: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    changed: Counter = field(default_factory=Counter)
    splits: Counter = field(default_factory=Counter)
    licenses: Counter = field(default_factory=Counter)
    # One example (record id and detail) per drop reason, so that an error can show what was looked for.
    examples: dict = field(default_factory=dict)
    path: str = ""
    # `duplicate_pair` drops whose first copy was kept from another source, by that source's name.
    duplicate_of: Counter = field(default_factory=Counter)

    def top_drops(self, n: int = 3) -> str:
        return ", ".join(f"{reason} {count}" for reason, count in self.dropped.most_common(n)) or "none"

    def emptied_by_other_sources(self) -> bool:
        """Whether every record that passed cleaning repeats one kept from another source (so 0 kept is legitimate).

        Cleaning leaving 0 already failed the run; after that, 0 kept can only mean that each record was dropped as
        an exact image+text repeat of a record seen first in another source (a record seen first in its own source
        is kept), as when one release re-publishes another (ROCOv2's CSV and parquet forms).
        """
        return (
            self.read > 0 and self.kept == 0 and sum(self.duplicate_of.values()) == self.dropped["duplicate_pair"] > 0
        )

    def duplicates_of(self) -> str:
        return ", ".join(f"{name!r} {count}" for name, count in sorted(self.duplicate_of.items()))


_WORKER_CONFIG: CleaningConfig | None = None


def _init_worker(config: CleaningConfig) -> None:
    global _WORKER_CONFIG
    _WORKER_CONFIG = config


def process_record(record: RawRecord, config: CleaningConfig) -> dict:
    """Clean one record: text, then image; encode the image as PNG and hash it.

    Returns a dict with `drop_reason` (or `None`), `detail`, `changes` and, when kept, `text`, `png`,
    `pixel_hash`, `phash`.

    Args:
        record (`RawRecord`):
            The record as read by its adapter.
        config (`CleaningConfig`):
            Cleaning options.
    """
    if record.drop_reason is not None:
        return {"drop_reason": record.drop_reason, "detail": "", "changes": []}
    text = clean_text(record.text, config)
    if text.drop_reason is not None:
        return {"drop_reason": text.drop_reason, "detail": repr(record.text[:60]), "changes": text.changes}
    image = clean_image(record.image, config)
    changes = text.changes + image.changes
    if image.drop_reason is not None:
        return {"drop_reason": image.drop_reason, "detail": image.detail, "changes": changes}
    buffer = io.BytesIO()
    # compress_level 6 is PIL's default; fixed explicitly because the output must be byte-identical across runs.
    image.image.save(buffer, format="PNG", compress_level=6)
    return {
        "drop_reason": None,
        "changes": changes,
        "text": text.text,
        "png": buffer.getvalue(),
        "pixel_hash": pixel_hash(image.image),
        "phash": perceptual_hash(image.image),
    }


def _process_in_worker(record: RawRecord) -> dict:
    return process_record(record, _WORKER_CONFIG)


def _keep_by_weight(seed: int, source: str, record_id: str, weight: float) -> bool:
    if weight >= 1.0:
        return True
    digest = hashlib.sha256(f"{seed}:{source}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < weight


def _iter_source(source: SourceConfig, path, seed: int, stats: _SourceStats) -> Iterator[RawRecord]:
    adapter = get_source_adapter(source.type)
    resolved = SourceConfig(**{**source.__dict__, "path": str(path)})
    seen: set[str] = set()
    for record in adapter(resolved):
        if not _keep_by_weight(seed, source.name, record.id, source.weight):
            stats.skipped_by_weight += 1
            continue
        if source.max_samples is not None and stats.read >= source.max_samples:
            return
        stats.read += 1
        if source.license:
            record.license = normalise_license(source.license)
        if record.id in seen and record.drop_reason is None:
            record.drop_reason = "duplicate_id"
        seen.add(record.id)
        yield record


def _map_bounded(pool, records: Iterator[RawRecord], batch_size: int) -> Iterator[tuple[RawRecord, dict]]:
    """Like `pool.imap`, but never reads more than two batches ahead (`imap` would drain the whole source)."""
    batches = iter(lambda: list(itertools.islice(records, batch_size)), [])
    pending = None
    for batch in batches:
        submitted = (batch, pool.map_async(_process_in_worker, batch, chunksize=4))
        if pending is not None:
            yield from zip(pending[0], pending[1].get(), strict=True)
        pending = submitted
    if pending is not None:
        yield from zip(pending[0], pending[1].get(), strict=True)


def _write_split(path: Path, rows: list[_IndexRow], group_of: list[str], indices: list[int], spool) -> str:
    schema = FEATURES.arrow_schema
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(indices), ROW_GROUP_SIZE):
            batch = []
            for index in indices[start : start + ROW_GROUP_SIZE]:
                row = rows[index]
                spool.seek(row.offset)
                batch.append(
                    {
                        "image": {"bytes": spool.read(row.length), "path": None},
                        "text": row.text,
                        "source": row.source,
                        "id": f"{row.source}:{row.id}",
                        "group_id": group_of[index],
                        "license": row.license,
                        "modality": row.modality,
                        "findings": row.findings,
                    }
                )
            writer.write_table(pa.Table.from_pylist(batch, schema=schema), row_group_size=ROW_GROUP_SIZE)
        if not indices:
            writer.write_table(schema.empty_table())
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _normalise_findings(findings: list[dict] | None, where: str) -> list[dict]:
    try:
        return [
            {"finding": str(f["finding"]), "site": f.get("site"), "present": parse_present(f.get("present", True))}
            for f in findings or []
        ]
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise MedvlError(f"{where}: findings must be a list of {{finding, site, present}} objects ({err})") from err


def _low_keep_warning(name: str, s: _SourceStats) -> str | None:
    if s.read == 0 or s.kept / s.read >= LOW_KEEP_WARNING:
        return None
    if s.emptied_by_other_sources():
        return (
            f"source {name!r} kept 0 of {s.read} records read from {s.path}: emptied by cross-source dedup, every "
            f"record that passed cleaning ({s.dropped['duplicate_pair']}) is an exact duplicate (same pixels, same "
            f"text) of a record kept from {s.duplicates_of()}; legitimate when one release re-publishes another, "
            f"otherwise check its path; top drop reasons: {s.top_drops()}"
        )
    across = f"; duplicates of records kept from other sources: {s.duplicates_of()}" if s.duplicate_of else ""
    return (
        f"source {name!r} kept {s.kept} of {s.read} records read ({s.kept / s.read:.0%}) from {s.path}; "
        f"top drop reasons: {s.top_drops()}{across}"
    )


def _summary_table(stats: dict[str, _SourceStats]) -> str:
    lines = [
        "| source | read | kept | train | validation | dropped | changed | warning |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(s.dropped.items())) or "0"
        changed = ", ".join(f"{k} {v}" for k, v in sorted(s.changed.items())) or "0"
        warning = ""
        if s.emptied_by_other_sources():
            repeats = s.dropped["duplicate_pair"]
            warning = f"kept 0: emptied by cross-source dedup, all {repeats} duplicates of {s.duplicates_of()}"
        elif _low_keep_warning(name, s):
            warning = f"kept {s.kept / s.read:.0%} < {LOW_KEEP_WARNING:.0%}: {s.top_drops()}"
        lines.append(
            f"| {name} | {s.read} | {s.kept} | {s.splits['train']} | {s.splits['validation']} | {dropped} | {changed} "
            f"| {warning} |"
        )
    return "\n".join(lines)


def _check_source_read(source: SourceConfig, s: _SourceStats, kept: int) -> None:
    """Fail the run when a source read or kept nothing: a 0-row source is a layout mismatch, not a dataset."""
    layouts = get_source_spec(source.type).layouts
    where = f"source {source.name!r} (type {source.type}) at {s.path}"
    if s.read == 0:
        skipped = f" ({s.skipped_by_weight} skipped by weight)" if s.skipped_by_weight else ""
        raise MedvlError(f"{where} read 0 records{skipped}; it looks for: {layouts}. Check `path` / `--data-root`")
    if kept == 0:
        reason, _ = s.dropped.most_common(1)[0]
        raise MedvlError(
            f"{where} kept 0 of {s.read} records read (dropped: {s.top_drops()}; e.g. {s.examples[reason]}); "
            f"layouts known: {layouts}. Use --strict to stop at the first bad record"
        )


def _index_sources(
    config: DatasetMixtureConfig,
    data_root,
    *,
    spool,
    stats: dict[str, _SourceStats],
    strict: bool,
    num_proc: int,
    show_progress: bool,
) -> list[_IndexRow]:
    """Pass 1: stream every source through the workers; spool kept PNGs, count drops and changes."""
    rows: list[_IndexRow] = []
    _init_worker(config.cleaning)
    pool = None
    if num_proc > 1:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        pool = context.Pool(num_proc, initializer=_init_worker, initargs=(config.cleaning,))
    try:
        for source in config.sources:
            source_stats = stats[source.name]
            path = config.resolve_path(source, data_root)
            source_stats.path = str(path)
            kept_before = len(rows)
            records = _iter_source(source, path, config.seed, source_stats)
            if pool is None:
                results = ((r, _process_in_worker(r)) for r in records)
            else:
                results = _map_bounded(pool, records, _BATCH_PER_WORKER * num_proc)
            for record, result in tqdm(results, desc=f"prepare {source.name}", unit="rec", disable=not show_progress):
                source_stats.changed.update(record.changes)
                source_stats.changed.update(result["changes"])
                reason = result["drop_reason"]
                if reason is not None:
                    source_stats.dropped[reason] += 1
                    if reason not in source_stats.examples:
                        detail = result.get("detail") or (str(record.image) if isinstance(record.image, Path) else "")
                        source_stats.examples[reason] = f"{record.id!r} in {record.file}" + (
                            f": {detail}" if detail else ""
                        )
                    if strict:
                        detail = f" ({result['detail']})" if result.get("detail") else ""
                        image = f", image {record.image}" if isinstance(record.image, Path) else ""
                        raise MedvlError(
                            f"--strict: source {source.name!r}, record {record.id!r} in {record.file}{image}: "
                            f"{reason}{detail}; fix or remove the record, or run without --strict"
                        )
                    continue
                offset = spool.tell()
                spool.write(result["png"])
                rows.append(
                    _IndexRow(
                        source=source.name,
                        id=record.id,
                        source_group=record.group_id,
                        license=record.license,
                        text=result["text"],
                        findings=_normalise_findings(record.findings, str(record.file)),
                        modality=record.modality,
                        pixel_hash=result["pixel_hash"],
                        phash=result["phash"],
                        offset=offset,
                        length=len(result["png"]),
                    )
                )
            _check_source_read(source, source_stats, len(rows) - kept_before)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if pool is not None:
            pool.terminate()
    return rows


def _group_duplicates(
    rows: list[_IndexRow], config: DatasetMixtureConfig, stats: dict[str, _SourceStats]
) -> tuple[list[_IndexRow], list[str], list[str], list[tuple[int, int]], dict[str, int], set[str]]:
    """Drop exact image+text repeats, then merge source groups and every kind of duplicate into one group.

    Identical texts merge groups only while rare; texts shared by more than `dedup.template_min_groups` source
    groups are templates (see `dedup.find_templates`) and are left unmerged.

    Returns the kept rows, their normalised texts, their merged group ids, the near-duplicate pairs, counts and
    the set of template texts.
    """
    report_keys = [normalise_report(r.text) for r in rows]
    dedup_stats: dict[str, int] = {}
    if config.dedup.drop_exact_duplicates:
        first_seen: dict[tuple[str, str], str] = {}  # (pixels, text) -> the source whose copy is kept
        keep = []
        for row, key in zip(rows, report_keys, strict=True):
            kept_from = first_seen.get((row.pixel_hash, key))
            if kept_from is not None:
                stats[row.source].dropped["duplicate_pair"] += 1
                if kept_from != row.source:
                    stats[row.source].duplicate_of[kept_from] += 1
            else:
                first_seen[(row.pixel_hash, key)] = row.source
                keep.append((row, key))
        dedup_stats["duplicate_pairs_dropped"] = len(rows) - len(keep)
        rows, report_keys = [r for r, _ in keep], [k for _, k in keep]
    union_find = UnionFind(len(rows))
    dedup_stats["merged_by_source_group"] = union_by_key(union_find, (r.source_group for r in rows))
    dedup_stats["exact_image_duplicates"] = len(rows) - len({r.pixel_hash for r in rows})
    dedup_stats["merged_by_exact_image"] = union_by_key(union_find, (r.pixel_hash for r in rows))
    band_stats: dict[str, int] = {}
    near_pairs = find_near_duplicate_pairs(
        [r.phash for r in rows], config.dedup.near_duplicate_threshold, stats=band_stats
    )
    dedup_stats["near_duplicate_candidate_pairs"] = band_stats["candidate_pairs"]
    near_pairs = [(i, j) for i, j in near_pairs if rows[i].pixel_hash != rows[j].pixel_hash]
    dedup_stats["near_duplicate_pairs"] = len(near_pairs)
    dedup_stats["near_duplicate_pairs_across_sources"] = sum(rows[i].source != rows[j].source for i, j in near_pairs)
    dedup_stats["merged_by_near_duplicate"] = sum(union_find.union(i, j) for i, j in near_pairs)
    dedup_stats["identical_report_duplicates"] = len(rows) - len(set(report_keys))
    templates = find_templates(report_keys, [r.source_group for r in rows], config.dedup.template_min_groups)
    dedup_stats["template_texts"] = len(templates)
    dedup_stats["template_records"] = sum(k in templates for k in report_keys)
    if config.dedup.group_identical_reports:
        dedup_stats["merged_by_identical_report"] = union_by_key(
            union_find, (None if k in templates else k for k in report_keys)
        )
    # A merged group is named by the smallest source group id in it, so names are stable across runs.
    root_name: dict[int, str] = {}
    for index, row in enumerate(rows):
        root = union_find.find(index)
        root_name[root] = min(root_name.get(root, row.source_group), row.source_group)
    group_of = [root_name[union_find.find(i)] for i in range(len(rows))]
    dedup_stats["groups"] = len(set(group_of))
    dedup_stats["largest_group"] = max(Counter(group_of).values(), default=0)
    return rows, report_keys, group_of, near_pairs, dedup_stats, templates


def _split_strata(
    rows: list[_IndexRow], report_keys: list[str], group_of: list[str], templates: set[str]
) -> list[str]:
    """Stratum of each record: its source, and whether its group holds template texts.

    Stratifying on templates gives both splits the same template share (to within one group), so that validation
    is not easier or harder than train by chance.
    """
    with_template = {g for g, k in zip(group_of, report_keys, strict=True) if k in templates}
    return [f"{r.source}\x00template" if g in with_template else r.source for r, g in zip(rows, group_of, strict=True)]


def _template_report(split_of: list[str], report_keys: list[str], templates: set[str], min_groups: int) -> dict:
    counts = Counter(k for k in report_keys if k in templates)
    share = {}
    for split in SPLITS:
        in_split = [k for k, s in zip(report_keys, split_of, strict=True) if s == split]
        share[split] = round(sum(k in templates for k in in_split) / len(in_split), 4) if in_split else 0.0
    return {
        "min_groups": min_groups,
        "texts": len(templates),
        "records": sum(counts.values()),
        "share": share,
        "most_common": [{"text": k[:80], "records": n} for k, n in counts.most_common(5)],
    }


@dataclass
class SplitResult:
    """What `split_rows` decided: the kept rows, their merged groups and splits, and what the report says of them."""

    rows: list[_IndexRow]
    group_of: list[str]
    split_of: list[str]
    dedup_stats: dict
    templates: dict
    leakage: dict


def split_rows(rows: list[_IndexRow], config: DatasetMixtureConfig, stats: dict[str, _SourceStats]) -> SplitResult:
    """De-duplicate, group and split indexed rows; count kept records per source and split; report leakage.

    Args:
        rows (`list[_IndexRow]`):
            The rows kept by cleaning, in source order.
        config (`DatasetMixtureConfig`):
            The mixture (`dedup`, `val_fraction`, `seed`).
        stats (`dict[str, _SourceStats]`):
            Per-source counters, updated in place (`duplicate_pair` drops, kept, splits, licences).
    """
    rows, report_keys, group_of, near_pairs, dedup_stats, templates = _group_duplicates(rows, config, stats)
    assignment = split_groups(
        group_of,
        _split_strata(rows, report_keys, group_of, templates),
        val_fraction=config.val_fraction,
        seed=config.seed,
    )
    split_of = [assignment[g] for g in group_of]
    for row, split in zip(rows, split_of, strict=True):
        stats[row.source].kept += 1
        stats[row.source].splits[split] += 1
        stats[row.source].licenses[row.license] += 1
    # Templates are shared across splits by design; rare identical texts must not be.
    leakage = leakage_report(
        split_of,
        [r.pixel_hash for r in rows],
        [None if k in templates else k for k in report_keys],
        group_of,
        [r.source_group for r in rows],
        near_pairs,
    )
    template_report = _template_report(split_of, report_keys, templates, config.dedup.template_min_groups)
    return SplitResult(rows, group_of, split_of, dedup_stats, template_report, leakage)


def prepare_dataset(
    config: DatasetMixtureConfig | str | Path | dict,
    *,
    output_dir: str | Path,
    data_root: str | Path | None = None,
    strict: bool = False,
    num_proc: int | None = None,
    show_progress: bool = True,
) -> Path:
    """Clean, de-duplicate and split the sources of a mixture into a dataset folder.

    Args:
        config (`DatasetMixtureConfig`, `dict` or path to a mixture YAML):
            The mixture recipe.
        output_dir (`str` or `pathlib.Path`):
            Where `data/{train,validation}-00000-of-00001.parquet`, `README.md` and `prepare_report.json` go.
        data_root (`str` or `pathlib.Path`, *optional*):
            Overrides the recipe's `data_root` for resolving relative source paths.
        strict (`bool`, *optional*, defaults to `False`):
            Raise a `MedvlError` naming source, file and reason at the first record that cleaning drops.
        num_proc (`int`, *optional*):
            Worker processes; defaults to the recipe's `num_proc`. `1` runs in this process.
        show_progress (`bool`, *optional*, defaults to `True`):
            Show tqdm progress bars.

    Returns:
        `pathlib.Path`: the output folder.
    """
    if isinstance(config, str | Path):
        config = load_mixture_config(config)
    elif isinstance(config, dict):
        config = DatasetMixtureConfig.from_dict(config)
    num_proc = num_proc or config.num_proc
    # Check every source before reading any: a typo in the last source must not cost a pass over the first.
    for source in config.sources:
        check_source_options(source)
        config.resolve_path(source, data_root)
    output_dir = Path(output_dir)
    _check_output_dir(output_dir)
    # Everything is written into a temporary sibling that replaces `output_dir` only once it is complete, so a
    # failed run (a bad source, a crash, Ctrl-C) leaves the previous dataset, card and report whole.
    with atomic_dir(output_dir) as work_dir:
        report = _prepare_into(work_dir, config, data_root, strict=strict, num_proc=num_proc, progress=show_progress)
    logger.info(
        "prepared %s: %d train, %d validation\n%s",
        output_dir,
        report["totals"]["train"],
        report["totals"]["validation"],
        report.pop("_summary_table"),
    )
    return output_dir


def _check_output_dir(output_dir: Path) -> None:
    # Re-preparing into a previous `medvl prepare` output replaces it; any other non-empty folder is not ours.
    if output_dir.is_file():
        raise MedvlError(f"--output-dir {output_dir} is a file; pass a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / "prepare_report.json").is_file():
        raise MedvlError(
            f"--output-dir {output_dir} is not empty and holds no prepare_report.json (not a prepared dataset); "
            "pass a new or empty folder"
        )


def _published_data_root(data_root, config: DatasetMixtureConfig) -> str | None:
    # The report is published with the dataset: never an absolute local path (it often names a user or a patient).
    root = str(data_root) if data_root is not None else config.data_root
    if root is None:
        return None
    return root if not Path(root).expanduser().is_absolute() else "<absolute path, not published>"


def _prepare_into(work_dir: Path, config, data_root, *, strict: bool, num_proc: int, progress: bool) -> dict:
    """Read, clean, de-duplicate, split and write the dataset, card and report into `work_dir`; return the report."""
    data_dir = work_dir / "data"
    data_dir.mkdir()
    stats: dict[str, _SourceStats] = {s.name: _SourceStats() for s in config.sources}
    # The PNG spool is an anonymous temporary file: it disappears however the run ends.
    with tempfile.TemporaryFile(prefix=".spool-", dir=work_dir) as spool:
        # Pass 1: index + hash
        rows = _index_sources(
            config, data_root, spool=spool, stats=stats, strict=strict, num_proc=num_proc, show_progress=progress
        )
        result = split_rows(rows, config, stats)
        rows, group_of, split_of = result.rows, result.group_of, result.split_of
        # A split without rows makes the dataset unloadable by `datasets`: refuse it, unless no validation split
        # was asked for (val_fraction 0), in which case only train is written.
        wanted = [split for split in SPLITS if split == "train" or config.val_fraction > 0]
        empty = [split for split in wanted if split not in split_of]
        if empty:
            raise MedvlError(
                f"split {empty[0]!r} would have 0 of {len(rows)} kept records; add data or change val_fraction "
                f"(now {config.val_fraction})"
            )
        # Pass 2: write
        files = {}
        for split in wanted:
            indices = [i for i, s in enumerate(split_of) if s == split]
            path = data_dir / f"{split}-00000-of-00001.parquet"
            files[path.relative_to(work_dir).as_posix()] = {
                "rows": len(indices),
                "sha256": _write_split(path, rows, group_of, indices, spool),
            }
    # A source emptied by cross-source dedup is the one 0-kept case that is not an error (see
    # `_SourceStats.emptied_by_other_sources`): it is a warning that says so.
    warnings = [w for name, s in stats.items() if (w := _low_keep_warning(name, s))]
    for warning in warnings:
        logger.warning(warning)
    report = _report(config, data_root, stats, rows, split_of, result, warnings, files)
    (work_dir / "prepare_report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    from medvl_recipes.hub.dataset_card import write_dataset_card

    write_dataset_card(work_dir, report, config)
    report["_summary_table"] = _summary_table(stats)
    return report


def _published_config(config: DatasetMixtureConfig) -> dict:
    published = config.to_dict()
    published["data_root"] = _published_data_root(None, config)
    for source in published.get("sources", []):
        if source.get("path") and Path(str(source["path"])).expanduser().is_absolute():
            source["path"] = f"<absolute path, not published>/{Path(str(source['path'])).name}"
    return published


def _report(config, data_root, stats, rows, split_of, result, warnings, files) -> dict:
    return {
        "config": _published_config(config),
        "data_root": _published_data_root(data_root, config),
        "totals": {
            "read": sum(s.read for s in stats.values()),
            "kept": len(rows),
            "train": split_of.count("train"),
            "validation": split_of.count("validation"),
            "dropped": dict(sorted(sum((s.dropped for s in stats.values()), Counter()).items())),
            "changed": dict(sorted(sum((s.changed for s in stats.values()), Counter()).items())),
        },
        "sources": {
            name: {
                "type": source.type,
                "read": s.read,
                "skipped_by_weight": s.skipped_by_weight,
                "kept": s.kept,
                "train": s.splits["train"],
                "validation": s.splits["validation"],
                "dropped": dict(sorted(s.dropped.items())),
                "changed": dict(sorted(s.changed.items())),
                "licenses": dict(sorted(s.licenses.items())),
                # `duplicate_pair` drops whose kept copy is in another source; when they are every record that
                # passed cleaning, the source kept 0 legitimately (a warning, not an error).
                "duplicate_of": dict(sorted(s.duplicate_of.items())),
                "emptied_by_cross_source_dedup": s.emptied_by_other_sources(),
            }
            for (name, s), source in zip(stats.items(), config.sources, strict=True)
        },
        "dedup": result.dedup_stats,
        "templates": result.templates,
        "leakage": result.leakage,
        "warnings": warnings,
        "drop_reasons": DROP_REASONS,
        "files": files,
    }


def cli(argv: list[str] | None = None) -> int:
    """`medvl prepare` entry point."""
    parser = argparse.ArgumentParser(
        prog="medvl prepare",
        description="Clean, de-duplicate and split the raw sources of a mixture recipe into a Hub-ready dataset "
        "(data/{train,validation}-*.parquet, README.md dataset card, prepare_report.json).",
    )
    parser.add_argument("--config", required=True, help="Mixture recipe, e.g. recipes/data/sample.yaml.")
    parser.add_argument("--output-dir", default=None, help="Output folder (default: outputs/datasets/<recipe name>).")
    parser.add_argument(
        "--data-root",
        default=None,
        help="Folder that relative source paths resolve against (overrides the recipe's data_root).",
    )
    parser.add_argument(
        "--strict", action="store_true", help="Stop at the first bad record, naming source, file and reason."
    )
    parser.add_argument(
        "--num-proc", type=int, default=None, help="Worker processes (default: the recipe's num_proc)."
    )
    parser.add_argument("--seed", type=int, default=None, help="Override the recipe's seed.")
    parser.add_argument("--val-fraction", type=float, default=None, help="Override the recipe's val_fraction.")
    args = parser.parse_args(argv)
    config = load_mixture_config(args.config)
    if args.seed is not None:
        config.seed = args.seed
    if args.val_fraction is not None:
        config.val_fraction = args.val_fraction
        config.__post_init__()
    output_dir = args.output_dir or Path("outputs/datasets") / Path(args.config).stem
    prepare_dataset(
        config, output_dir=output_dir, data_root=args.data_root, strict=args.strict, num_proc=args.num_proc
    )
    return 0
