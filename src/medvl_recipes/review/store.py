# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Reviewer credentials and answers.

Credentials come from a file (`--credentials`, one `login:password` per line) or the `MEDVL_REVIEWERS`
environment variable (`login:password,login:password`), never from the repository. Answers live in one JSONL
file per reviewer under the answers folder, rewritten atomically (`write_jsonl`) on every answer, so a crash or
a closed tab loses nothing already saved; the page only ever reads the logged-in reviewer's own file.
"""

import datetime
import hmac
import os
import re
from pathlib import Path

from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import read_jsonl, write_jsonl


CREDENTIALS_ENV = "MEDVL_REVIEWERS"
_LOGIN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def load_credentials(path: str | Path | None = None, environ: dict | None = None) -> dict[str, str]:
    """`{login: password}` from a credentials file, else from `MEDVL_REVIEWERS`.

    Args:
        path (`str` or `Path`, *optional*): A file of `login:password` lines (`#` comments allowed).
        environ (`dict`, *optional*): The environment (defaults to `os.environ`).
    """
    environ = os.environ if environ is None else environ
    if path is not None:
        if not Path(path).is_file():
            raise MedvlError(f"--credentials {path}: no such file")
        entries = [(f"{path}:{i}", line) for i, line in enumerate(Path(path).read_text().splitlines(), start=1)]
    elif environ.get(CREDENTIALS_ENV):
        entries = [(CREDENTIALS_ENV, item) for item in environ[CREDENTIALS_ENV].split(",")]
    else:
        raise MedvlError(f"no reviewers: pass --credentials FILE (login:password lines) or set {CREDENTIALS_ENV}")
    credentials = {}
    for where, entry in entries:
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        login, sep, password = entry.partition(":")
        if not sep or not _LOGIN.match(login) or not password:
            raise MedvlError(f"{where}: expected `login:password` (login of letters, digits, _ . -), got {login!r}")
        credentials[login] = password
    return credentials


def check_login(credentials: dict[str, str], login: str, password: str) -> bool:
    """Whether `login` and `password` match (compared in constant time)."""
    expected = credentials.get(login)
    return expected is not None and hmac.compare_digest(expected.encode(), password.encode())


def answers_file(answers_dir: str | Path, reviewer: str) -> Path:
    """The reviewer's own answers file."""
    if not _LOGIN.match(reviewer):
        raise MedvlError(f"bad reviewer login {reviewer!r}")
    return Path(answers_dir) / f"{reviewer}.jsonl"


def load_answers(answers_dir: str | Path, reviewer: str) -> dict[str, dict]:
    """`{case id: latest answer}` of one reviewer (a case answered again keeps its last answer)."""
    path = answers_file(answers_dir, reviewer)
    if not path.is_file():
        return {}
    return {row["case_id"]: row for _, row in read_jsonl(path, what="a review answer")}


def save_answer(answers_dir: str | Path, reviewer: str, answer: dict) -> dict:
    """Append one answer to the reviewer's file (the whole file is rewritten atomically); returns the answer."""
    path = answers_file(answers_dir, reviewer)
    rows = [row for _, row in read_jsonl(path, what="a review answer")] if path.is_file() else []
    answer = {**answer, "reviewer": reviewer, "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    write_jsonl(path, [*rows, answer])
    return answer


def load_all_answers(answers_dir: str | Path) -> list[dict]:
    """Every reviewer's latest answer per case (for `medvl review stats`, never for the page)."""
    rows = []
    for path in sorted(Path(answers_dir).glob("*.jsonl")):
        rows.extend(load_answers(answers_dir, path.stem).values())
    return rows
