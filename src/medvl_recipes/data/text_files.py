# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The one reader of the plain-text and CSV files that public releases ship (captions, licences, report CSVs).

Releases are re-saved by their users: a CSV opened and saved in Excel gains a UTF-8 byte-order mark, or becomes
Windows-1252; a file edited on Windows has CRLF line ends. Every adapter reads text through `read_text` /
`read_csv`, so that all of them accept UTF-8 with or without BOM, fall back to Windows-1252 (which the caller
counts per record, see `RawRecord.changes`) and fail with one line naming the file when neither decodes.
JSON Lines go through `medvl_recipes.jsonl.read_jsonl` (JSON is UTF-8 by definition, RFC 8259).
"""

import csv
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import read_jsonl


logger = logging.getLogger(__name__)

CP1252_CHANGE = "text_decoded_cp1252"


@dataclass
class TextFile:
    """A decoded text file.

    Args:
        path (`pathlib.Path`):
            The file.
        text (`str`):
            Its content, BOM removed, line ends normalised to `\\n`.
        encoding (`str`):
            `utf-8` or `cp1252` (the fallback).
    """

    path: Path
    text: str
    encoding: str

    @property
    def changes(self) -> list[str]:
        """What decoding changed, to be counted on every record read from the file."""
        return [CP1252_CHANGE] if self.encoding == "cp1252" else []


@dataclass
class CsvTable:
    """A CSV file read with `read_csv`.

    Args:
        path (`pathlib.Path`):
            The file.
        columns (`list[str]`):
            Header names, stripped of whitespace.
        rows (`list[tuple[int, dict]]`):
            `(line_number, row)` pairs; `line_number` is the file line where the row ends.
        encoding (`str`):
            `utf-8` or `cp1252`.
    """

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict]] = field(default_factory=list)
    encoding: str = "utf-8"

    @property
    def changes(self) -> list[str]:
        return [CP1252_CHANGE] if self.encoding == "cp1252" else []


def read_text(path: str | Path, *, what: str = "a text file") -> TextFile:
    """Read a text file: UTF-8 (BOM optional), else Windows-1252; CRLF and CR become LF.

    Args:
        path (`str` or `pathlib.Path`):
            The file.
        what (`str`, *optional*):
            What the file should be, for the error message.

    Raises:
        `MedvlError`: one line naming the file when it is missing or decodes as neither encoding.
    """
    path = Path(path)
    if not path.is_file():
        raise MedvlError(f"{path}: no such file; expected {what}")
    data = path.read_bytes()
    try:
        text, encoding = data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            text, encoding = data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError as err:
            raise MedvlError(
                f"{path}: neither UTF-8 (byte {utf8_error.start}) nor Windows-1252 (byte {err.start}); "
                f"re-save {what} as UTF-8"
            ) from err
        logger.warning("%s is not UTF-8; read it as Windows-1252 (counted as %s per record)", path, CP1252_CHANGE)
    # newline="" semantics: normalise here once so that line-based readers and csv see the same lines.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return TextFile(path, text, encoding)


def read_csv(
    path: str | Path, *, required: Sequence[str | Sequence[str]] = (), what: str = "a CSV file", delimiter: str = ","
) -> CsvTable:
    """Read a CSV file with a header row through `read_text`; check the columns a caller needs.

    Args:
        path (`str` or `pathlib.Path`):
            The file.
        required (`Sequence`, *optional*):
            Columns that must exist; an entry that is a tuple/list of names is satisfied by any one of them.
        what (`str`, *optional*):
            What the file should be, for error messages.
        delimiter (`str`, *optional*, defaults to `","`):
            Field separator.

    Raises:
        `MedvlError`: one line naming the file, the missing column(s) and the columns that are there.
    """
    source = read_text(path, what=what)
    reader = csv.reader(io.StringIO(source.text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise MedvlError(f"{source.path}: empty file; expected {what} with a header row") from None
    except csv.Error as err:
        raise MedvlError(f"{source.path}:1: not valid CSV ({err}); expected {what}") from err
    columns = [c.strip() for c in header]
    missing = []
    for entry in required:
        names = [entry] if isinstance(entry, str) else list(entry)
        if not any(n in columns for n in names):
            missing.append("|".join(names))
    if missing:
        raise MedvlError(f"{source.path}: missing column(s) {missing}; the columns there are {columns} ({what})")
    table = CsvTable(source.path, columns, encoding=source.encoding)
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            table.rows.append((reader.line_num, dict(zip(columns, values, strict=False))))
    except csv.Error as err:
        raise MedvlError(f"{source.path}:{reader.line_num}: not valid CSV ({err}); expected {what}") from err
    return table


def read_jsonl_utf8(path: str | Path, *, what: str = "one JSON object per line") -> Iterator[tuple[int, dict]]:
    """`medvl_recipes.jsonl.read_jsonl`, with a file that is not UTF-8 refused in one line instead of a traceback.

    JSON is UTF-8 by definition (RFC 8259), so a re-encoded JSONL file is refused, not guessed.

    Args:
        path (`str` or `pathlib.Path`):
            The file.
        what (`str`, *optional*):
            What a line should hold, for the error message.
    """
    try:
        yield from read_jsonl(path, what=what)
    except UnicodeDecodeError as err:
        raise MedvlError(f"{path}: not UTF-8 (byte {err.start}); re-save it as UTF-8 ({what})") from err
