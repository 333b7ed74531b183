# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl review publish`: a review's answers as a Hub-ready dataset folder, for `medvl push dataset`.

    medvl review publish --answers reviews/ --runs outputs/eval-a outputs/eval-b \
        --secret-file ~/.medvl-review-secret --output-dir reviews/hub
    medvl push dataset reviews/hub --repo-id me/medvl-review

The folder holds `data/train-00000-of-00001.parquet` (one row per reviewer, case and rated report) and a
`README.md` dataset card. What leaves the reviewers' machine:
- reviewer logins become `reviewer-<12 hex>`, an HMAC-SHA256 of the login keyed with a secret that stays local
  (`--secret-file`, created on first use, or `MEDVL_REVIEW_SECRET`), so one reviewer keeps one pseudonym across
  publications and nobody without the secret can test a guessed login;
- free text (comments, reports, references) goes through the de-identification and PHI patterns of
  `data.cleaning` (`CleaningConfig.deid_patterns`, `phi_patterns`), each match masked, and any reviewer login in
  it is replaced by that reviewer's pseudonym; `--drop-comments` leaves the comments out altogether;
- no credentials, no save times, no local paths (a run's decoder is named only when it is a Hub id).
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from collections import Counter
from pathlib import Path

import datasets
import datasets.info

from medvl_recipes.atomic import atomic_dir
from medvl_recipes.data.mixture import CleaningConfig
from medvl_recipes.data.prepared import looks_local
from medvl_recipes.errors import MedvlError
from medvl_recipes.review.cases import FINDING_VERDICTS, REXVAL_ERRORS, SYSTEM_NAMES, load_cases
from medvl_recipes.review.store import load_all_answers


SECRET_ENV = "MEDVL_REVIEW_SECRET"
DATA_FILE = "data/train-00000-of-00001.parquet"
REVIEW_FEATURES = datasets.Features(
    {
        "reviewer": datasets.Value("string"),
        "case_id": datasets.Value("string"),
        "system": datasets.Value("string"),
        "shown_as": datasets.Value("int32"),
        "report": datasets.Value("string"),
        "reference": datasets.Value("string"),
        "acceptability": datasets.Value("int32"),
        "significant_errors": datasets.Value("int32"),
        "insignificant_errors": datasets.Value("int32"),
        "errors": [
            {
                "category": datasets.Value("string"),
                "significant": datasets.Value("int32"),
                "insignificant": datasets.Value("int32"),
            }
        ],
        "findings": [
            {
                "finding": datasets.Value("string"),
                "extractor": datasets.Value("string"),
                "verdict": datasets.Value("string"),
            }
        ],
        "preference": datasets.Value("string"),
        "comment": datasets.Value("string"),
    }
)


def load_secret(path: str | Path | None = None, environ: dict | None = None) -> bytes:
    """The pseudonymisation key: `MEDVL_REVIEW_SECRET`, else the `path` file (created with a random key if missing).

    Args:
        path (`str` or `Path`, *optional*): A local file holding the key; keep it, or pseudonyms change.
        environ (`dict`, *optional*): The environment (defaults to `os.environ`).
    """
    environ = os.environ if environ is None else environ
    if environ.get(SECRET_ENV):
        secret, where = environ[SECRET_ENV].strip(), SECRET_ENV
    else:
        secret, where = _secret_file(path), f"--secret-file {path}"
    if len(secret) < 16:
        raise MedvlError(f"{where}: the key is shorter than 16 characters")
    return secret.encode()


def _secret_file(path: str | Path | None) -> str:
    if path is None:
        raise MedvlError(
            f"no pseudonymisation secret: pass --secret-file FILE (created if missing) or set {SECRET_ENV}"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created readable by its owner only: whoever holds the key can link pseudonyms back to logins.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def pseudonym(reviewer: str, secret: bytes) -> str:
    """`reviewer-<12 hex>`: the login's HMAC-SHA256 under `secret` (stable per secret, not reversible without it)."""
    return "reviewer-" + hmac.new(secret, reviewer.encode(), hashlib.sha256).hexdigest()[:12]


class TextMasker:
    """Masks the `data.cleaning` de-identification and PHI patterns, and reviewer logins, in free text.

    Args:
        pseudonyms (`dict[str, str]`): Login -> pseudonym; a login in the text becomes its pseudonym.
        cleaning (`CleaningConfig`, *optional*): Whose `deid_patterns`, `phi_patterns` and `deid_mask` apply.
    """

    def __init__(self, pseudonyms: dict[str, str], cleaning: CleaningConfig | None = None):
        cleaning = cleaning or CleaningConfig()
        # One regex each: a PHI pattern may start with its own inline flags (`(?i)`), which cannot be joined.
        self.patterns = [re.compile(p) for p in (*cleaning.deid_patterns, *cleaning.phi_patterns)]
        self.mask = cleaning.deid_mask
        self.logins = [
            (re.compile(rf"(?i)(?<![\w.-]){re.escape(login)}(?![\w-])"), alias)
            for login, alias in sorted(pseudonyms.items(), key=lambda kv: -len(kv[0]))
        ]
        self.masked = Counter()

    def __call__(self, text: str | None, what: str) -> str | None:
        if not text:
            return text
        n = 0
        for pattern in self.patterns:
            text, k = pattern.subn(self.mask, text)
            n += k
        for pattern, alias in self.logins:
            text, k = pattern.subn(alias, text)
            n += k
        self.masked[what] += n
        return text


def review_rows(answers: list[dict], run_dirs: list[str], secret: bytes, keep_comments: bool = True) -> tuple:
    """`(rows, masker)`: one row per reviewer, case and rated report, pseudonymised and masked (see module doc)."""
    cases = {case.case_id: case for case in load_cases(run_dirs)}
    pseudonyms = {answer["reviewer"]: pseudonym(answer["reviewer"], secret) for answer in answers}
    mask = TextMasker(pseudonyms)
    rows = []
    for answer in sorted(answers, key=lambda a: (pseudonyms[a["reviewer"]], a["case_id"])):
        case = cases.get(answer["case_id"])
        if case is None:
            raise MedvlError(f"case {answer['case_id']!r} of the answers is in none of the runs {', '.join(run_dirs)}")
        shown = answer.get("shown") or list(answer["systems"])
        comment = mask(answer.get("comment") or "", "comment") if keep_comments else None
        for system, rating in sorted(answer["systems"].items()):
            given = rating.get("errors", {})
            errors = [{"category": c, "significant": 0, "insignificant": 0, **given.get(c, {})} for c in REXVAL_ERRORS]
            rows.append(
                {
                    "reviewer": pseudonyms[answer["reviewer"]],
                    "case_id": case.case_id,
                    "system": system,
                    "shown_as": shown.index(system) + 1 if system in shown else None,
                    "report": mask(case.reports[system], "report"),
                    "reference": mask(case.reference, "reference"),
                    "acceptability": rating["acceptability"],
                    "significant_errors": sum(e["significant"] for e in errors),
                    "insignificant_errors": sum(e["insignificant"] for e in errors),
                    "errors": errors,
                    "findings": [
                        {"finding": f["finding"], "extractor": f.get("extractor"), "verdict": f["verdict"]}
                        for f in rating.get("findings", [])
                    ],
                    "preference": answer.get("preference"),
                    "comment": comment,
                }
            )
    return rows, mask


def _decoders(run_dirs: list[str]) -> dict[str, dict]:
    # A run's decoder as the card may name it: a Hub id and its revision, never a local path.
    named = {}
    for system, run_dir in zip(SYSTEM_NAMES, run_dirs, strict=False):
        metrics = Path(run_dir) / "metrics.json"
        decoder = json.loads(metrics.read_text()).get("models", {}).get("decoder") or {} if metrics.is_file() else {}
        name = decoder.get("name_or_path") or ""
        named[system] = {
            "decoder": name if name and not looks_local(name) else "a local checkpoint",
            "revision": decoder.get("revision") or "unknown",
        }
    return named


def review_card(
    rows: list[dict], run_dirs: list[str], masked: Counter, *, license_id: str, pretty_name: str, num_bytes: int = 0
) -> str:
    """The dataset card (YAML metadata and a description) of a published review."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from medvl_recipes.hub.dataset_card import size_category

    card_data = DatasetCardData(
        pretty_name=pretty_name,
        license=license_id,
        task_categories=["image-to-text"],
        language=["en"],
        tags=["medical", "radiology", "human-evaluation", "expert-review", "medvl-recipes"],
        size_categories=[size_category(len(rows))],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    )
    splits = datasets.SplitDict()
    splits.add(datasets.SplitInfo(name="train", num_bytes=num_bytes, num_examples=len(rows)))
    datasets.info.DatasetInfosDict(
        {"default": datasets.DatasetInfo(features=REVIEW_FEATURES, splits=splits)}
    ).to_dataset_card_data(card_data)
    decoders = _decoders(run_dirs)
    table = []
    for system, named in decoders.items():
        mine = [row["acceptability"] for row in rows if row["system"] == system]
        mean = f"{sum(mine) / len(mine):.2f}" if mine else "-"
        table.append(f"| {system} | {named['decoder']} | `{named['revision']}` | {len(mine)} | {mean} |")
    reviewers, case_ids = {row["reviewer"] for row in rows}, {row["case_id"] for row in rows}
    masked_line = ", ".join(f"{what}: {n}" for what, n in sorted(masked.items())) or "none"
    body = f"""---
{card_data.to_yaml()}
---

# {pretty_name}

Expert ratings of generated radiology reports, collected with `medvl review`
([medvl-recipes](https://github.com/medvl-recipes/medvl-recipes)): {len(reviewers)} reviewers, {len(case_ids)} cases,
{len(rows)} rated reports. Reviewers were blinded (each saw "Report 1" and "Report 2" in an order drawn per
reviewer and case; `shown_as` records it) and each had their own seeded case order.

> **Not for clinical use.** Research ratings of research model outputs.

| system | decoder | revision | rated reports | mean acceptability (1-5) |
|---|---|---|---|---|
{chr(10).join(table)}

## Privacy

- `reviewer` is a pseudonym, `reviewer-` and 12 hex digits of an HMAC-SHA256 of the login under a key that was
  not published: stable across publications of this review, not reversible without the key.
- Free text went through the de-identification and PHI patterns of medvl-recipes' `data.cleaning` (placeholders,
  full dates, record numbers, long digit runs), each match replaced by `___`, and reviewer logins by their
  pseudonyms. Masked: {masked_line}. Patterns cannot catch every name: read the comments before reuse.
- No credentials, save times or local paths are included.

## Columns

`reviewer`, `case_id` (the sample id of the evaluated dataset), `system` (`A`, `B`: the evaluated runs),
`shown_as` (1 or 2), `report` (the generated report), `reference`, `acceptability` (1 = unacceptable,
5 = as a radiologist would write), `significant_errors` / `insignificant_errors` (totals of `errors`),
`errors` (the six ReXVal categories of Yu et al., 2023, each with clinically significant and insignificant
counts: {"; ".join(REXVAL_ERRORS)}), `findings` (per-finding verdicts: {", ".join(FINDING_VERDICTS)}; `extractor`
is the rule-based extractor's state for the report, `not stated` for a finding the report missed),
`preference` (the preferred system, `none`, or empty for a single-run review), `comment`.
"""
    return str(DatasetCard(body))


def publish_review(
    answers_dir: str,
    run_dirs: list[str],
    output_dir: str | Path,
    secret: bytes,
    *,
    keep_comments: bool = True,
    license_id: str = "cc-by-4.0",
    pretty_name: str = "medvl-recipes expert review",
) -> dict:
    """Write the Hub-ready review folder (`data/*.parquet`, `README.md`) atomically; returns a short summary.

    Args:
        answers_dir (`str`): The review's answers folder.
        run_dirs (`list[str]`): The reviewed `medvl eval` runs (A, B).
        output_dir (`str` or `Path`): The folder to write (replaced whole).
        secret (`bytes`): The pseudonymisation key (`load_secret`); never written.
        keep_comments (`bool`, *optional*, defaults to `True`): Publish the (masked) comments.
        license_id (`str`, *optional*, defaults to `"cc-by-4.0"`): The card's licence.
        pretty_name (`str`, *optional*): The card's title.
    """
    answers = load_all_answers(answers_dir)
    if not answers:
        raise MedvlError(f"--answers {answers_dir}: no answers yet (one <reviewer>.jsonl per reviewer)")
    rows, mask = review_rows(answers, run_dirs, secret, keep_comments)
    with atomic_dir(output_dir) as staging:
        (staging / "data").mkdir()
        datasets.Dataset.from_list(rows, features=REVIEW_FEATURES).to_parquet(str(staging / DATA_FILE))
        num_bytes = (staging / DATA_FILE).stat().st_size
        card = review_card(
            rows, run_dirs, mask.masked, license_id=license_id, pretty_name=pretty_name, num_bytes=num_bytes
        )
        (staging / "README.md").write_text(card)
        for path in staging.rglob("*"):
            if path.is_file() and secret in path.read_bytes():
                raise MedvlError(f"{path.name} would hold the pseudonymisation secret; nothing written")
    return {"rows": len(rows), "reviewers": len({r["reviewer"] for r in rows}), "masked": dict(mask.masked)}


def cli(argv: list[str] | None = None) -> int:
    """`medvl review publish ...`."""
    parser = argparse.ArgumentParser(prog="medvl review publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", required=True, help="The review's answers folder.")
    parser.add_argument("--runs", nargs="+", required=True, help="The reviewed `medvl eval` runs (A, B).")
    parser.add_argument(
        "--output-dir", required=True, help="The Hub-ready folder to write (for `medvl push dataset`)."
    )
    parser.add_argument("--secret-file", help=f"Local file of the pseudonymisation key (else {SECRET_ENV}).")
    parser.add_argument("--drop-comments", action="store_true", help="Leave the reviewers' comments out.")
    parser.add_argument("--license", default="cc-by-4.0", help="The dataset card's licence id.")
    parser.add_argument("--pretty-name", default="medvl-recipes expert review", help="The dataset card's title.")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir).resolve()
    if args.secret_file and Path(args.secret_file).expanduser().resolve().is_relative_to(output_dir):
        raise MedvlError(f"--secret-file {args.secret_file} is inside --output-dir, which is published; keep it apart")
    secret = load_secret(args.secret_file)
    summary = publish_review(
        args.answers,
        args.runs,
        output_dir,
        secret,
        keep_comments=not args.drop_comments,
        license_id=args.license,
        pretty_name=args.pretty_name,
    )
    sys.stdout.write(
        f"medvl review publish: {summary['rows']} rated reports of {summary['reviewers']} reviewers in {output_dir} "
        f"(masked: {summary['masked'] or 'none'}); push it with `medvl push dataset {output_dir} --repo-id ...`\n"
    )
    return 0
