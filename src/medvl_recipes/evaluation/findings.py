# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Rule-based finding extraction from report text, with NegEx-style negation, and finding agreement F1.

A report is split into sentences; lexicon phrases (finding synonyms, negation/uncertainty triggers, pseudo-triggers,
scope terminators) are matched longest-first. A finding mention takes its polarity from the run of triggers
nearest to it: walking back from the mention (over other findings of the same list, "no effusion or
pneumothorax") up to a terminator ("but", "however", ";", ...) or the sentence start, and walking forward for
post-triggers ("effusion is not seen"). Negation triggers in one run compose, so a double negation ("no evidence of
absence of effusion") affirms. Pseudo-triggers ("no change in the effusion") do not negate.

Uncertainty policy: hedged mentions ("cannot exclude pneumonia", "possible effusion") are labelled
`"uncertain"` and scored as present, the "U-Ones" policy of the CheXpert paper (Irvin et al., 2019): a report
that raises a finding is treated as reporting it. Per report, present > uncertain > absent across mentions.
"no finding" is derived as in the CheXpert labeler: present when no finding other than support devices is present
or uncertain. Sites (left/right) are not scored.
"""

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

PRESENT, UNCERTAIN, ABSENT = "present", "uncertain", "absent"
NO_FINDING = "no finding"
# Findings that do not rule out "no finding" (CheXpert labeler convention).
_NO_FINDING_EXEMPT = {"support devices"}
_SENTENCE_SPLIT = re.compile(r"(?<!\d)[.!?](?!\d)|\n+")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


@dataclass
class Lexicon:
    """The phrases the extractor matches.

    Args:
        findings (`dict[str, dict[str, list[str]]]`):
            Canonical finding name -> `{"synonyms": [...], "absent": [...]}`.
        negation_pre, negation_post, uncertainty_pre, uncertainty_post, pseudo, termination, ignore (`list[str]`):
            Trigger phrases; see `lexicon.yaml` for their meaning.
    """

    findings: dict[str, dict[str, list[str]]]
    negation_pre: list[str] = field(default_factory=list)
    negation_post: list[str] = field(default_factory=list)
    uncertainty_pre: list[str] = field(default_factory=list)
    uncertainty_post: list[str] = field(default_factory=list)
    pseudo: list[str] = field(default_factory=list)
    termination: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Canonical finding names, in lexicon order (the column order of label matrices)."""
        return list(self.findings)


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """Load a finding lexicon from YAML (the packaged default `evaluation/lexicon.yaml` when `path` is None).

    Args:
        path (`str` or `Path`, *optional*):
            A YAML file with keys `findings`, `negation: {pre, post, pseudo}`, `uncertainty: {pre, post}`,
            `termination`, `ignore` (same shape as the default).
    """
    if path is None:
        text = resources.files("medvl_recipes.evaluation").joinpath("lexicon.yaml").read_text(encoding="utf-8")
        source = "<default lexicon>"
    else:
        path = Path(path)
        if not path.is_file():
            raise MedvlError(
                f"lexicon file {path} does not exist; pass a YAML file shaped like evaluation/lexicon.yaml"
            )
        text, source = path.read_text(encoding="utf-8"), str(path)
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("findings"), dict) or not raw["findings"]:
        raise MedvlError(
            f"{source}: expected a mapping with a non-empty `findings` mapping of name -> {{synonyms: [...]}}"
        )
    findings = {}
    for name, entry in raw["findings"].items():
        entry = entry or {}
        if not isinstance(entry, dict) or not isinstance(entry.get("synonyms", []), list):
            raise MedvlError(f"{source}: findings.{name} must be a mapping with a `synonyms` list")
        findings[str(name).lower()] = {
            "synonyms": [s.lower() if isinstance(s, str) else s for s in entry.get("synonyms") or []],
            "absent": [s.lower() if isinstance(s, str) else s for s in entry.get("absent") or []],
        }
    negation, uncertainty = raw.get("negation") or {}, raw.get("uncertainty") or {}
    for key, phrases in (
        [("findings", [p for e in findings.values() for p in e["synonyms"] + e["absent"]])]
        + [
            (f"{group}.{k}", v)
            for group, d in [("negation", negation), ("uncertainty", uncertainty)]
            for k, v in d.items()
        ]
        + [("termination", raw.get("termination") or []), ("ignore", raw.get("ignore") or [])]
    ):
        bad = [p for p in phrases if not isinstance(p, str)]
        if bad:
            # YAML 1.1 reads a bare `no`/`yes`/`on` as a boolean.
            raise MedvlError(f'{source}: {key} has non-string phrases {bad}; quote them, e.g. "no"')
    return Lexicon(
        findings=findings,
        negation_pre=list(negation.get("pre") or []),
        negation_post=list(negation.get("post") or []),
        uncertainty_pre=list(uncertainty.get("pre") or []),
        uncertainty_post=list(uncertainty.get("post") or []),
        pseudo=list(negation.get("pseudo") or []),
        termination=list(raw.get("termination") or []),
        ignore=list(raw.get("ignore") or []),
    )


@dataclass
class _Span:
    start: int
    end: int
    roles: dict  # role -> value (finding name for "finding"/"absent", True otherwise)


class FindingExtractor:
    """Extract per-finding labels (`present` / `uncertain` / `absent`) from free-text reports.

    Args:
        lexicon (`Lexicon`, `str` or `Path`, *optional*):
            The lexicon or a YAML path; the packaged default (14 CheXpert observations + nodule + mass) when None.

    Example:
        >>> FindingExtractor().extract("No pleural effusion. Small left pneumothorax.")["pleural effusion"]
        'absent'
    """

    def __init__(self, lexicon: Lexicon | str | Path | None = None):
        self.lexicon = lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon)
        self.names = self.lexicon.names
        self._index = {name: i for i, name in enumerate(self.names)}
        self._roles: dict[str, dict] = {}
        lex = self.lexicon
        for role, phrases in [
            ("neg_pre", lex.negation_pre),
            ("neg_post", lex.negation_post),
            ("unc_pre", lex.uncertainty_pre),
            ("unc_post", lex.uncertainty_post),
            ("pseudo", lex.pseudo),
            ("term", lex.termination),
            ("ignore", lex.ignore),
        ]:
            for phrase in phrases:
                self._roles.setdefault(self._norm(phrase), {})[role] = True
        for name, entry in lex.findings.items():
            for phrase in entry["synonyms"]:
                self._roles.setdefault(self._norm(phrase), {})["finding"] = name
            for phrase in entry["absent"]:
                self._roles.setdefault(self._norm(phrase), {})["absent"] = name
        # Longest alternatives first so that the regex prefers "no evidence of" to "no" at the same position.
        alternatives = []
        for phrase in sorted(self._roles, key=len, reverse=True):
            body = r"\s+".join(re.escape(tok) for tok in phrase.split())
            plural = r"(?:e?s)?" if "finding" in self._roles[phrase] else ""
            left = r"(?<![a-z0-9])" if phrase[0].isalnum() else ""
            right = r"(?![a-z0-9])" if phrase[-1].isalnum() else ""
            alternatives.append(f"{left}{body}{plural}{right}")
        self._pattern = re.compile("|".join(alternatives))

    @staticmethod
    def _norm(phrase: str) -> str:
        return " ".join(str(phrase).lower().split())

    def _lookup(self, matched: str) -> dict:
        text = self._norm(matched)
        for candidate in (text, text[:-1], text[:-2]):
            roles = self._roles.get(candidate)
            if roles is not None and (candidate == text or "finding" in roles):
                return roles
        return {}

    def _sentence_labels(self, sentence: str) -> list[tuple[str, str]]:
        spans = [_Span(m.start(), m.end(), self._lookup(m.group())) for m in self._pattern.finditer(sentence)]
        spans = [s for s in spans if s.roles and "ignore" not in s.roles and "pseudo" not in s.roles]
        labels = []
        for i, span in enumerate(spans):
            if "absent" in span.roles:
                labels.append((span.roles["absent"], ABSENT))
                continue
            if "finding" not in span.roles:
                continue
            negations, uncertain = 0, False
            # Walk back over other mentions of the same list to the nearest run of pre-triggers.
            seen_trigger = False
            for other in reversed(spans[:i]):
                roles = other.roles
                if "term" in roles:
                    break
                if "finding" in roles or "absent" in roles:
                    if seen_trigger:
                        break
                    continue
                if "neg_pre" in roles or "unc_pre" in roles:
                    seen_trigger = True
                    negations += "neg_pre" in roles and "unc_pre" not in roles
                    uncertain |= "unc_pre" in roles
            seen_trigger = False
            for other in spans[i + 1 :]:
                roles = other.roles
                if "term" in roles:
                    break
                if "finding" in roles or "absent" in roles:
                    if seen_trigger:
                        break
                    continue
                if "neg_post" in roles or "unc_post" in roles:
                    seen_trigger = True
                    negations += "neg_post" in roles and "unc_post" not in roles
                    uncertain |= "unc_post" in roles
                elif seen_trigger:
                    break
            if uncertain:
                label = UNCERTAIN
            elif negations % 2 == 1:
                label = ABSENT
            else:
                label = PRESENT
            labels.append((span.roles["finding"], label))
        return labels

    def extract(self, text: str) -> dict[str, str]:
        """Label the findings of one report.

        Args:
            text (`str`):
                The report.

        Returns:
            `dict[str, str]`: finding -> `"present"`, `"uncertain"` or `"absent"` for every finding the report
            mentions, plus `"no finding"` (always set, derived).
        """
        rank = {PRESENT: 2, UNCERTAIN: 1, ABSENT: 0}
        result: dict[str, str] = {}
        lowered = (text or "").lower()
        for sentence in _SENTENCE_SPLIT.split(lowered):
            for name, label in self._sentence_labels(sentence):
                if name not in result or rank[label] > rank[result[name]]:
                    result[name] = label
        if NO_FINDING in self._index:
            abnormal = any(
                label != ABSENT for name, label in result.items() if name not in _NO_FINDING_EXEMPT | {NO_FINDING}
            )
            result[NO_FINDING] = ABSENT if abnormal else PRESENT
        return result

    def positive_matrix(self, texts: Iterable[str]) -> np.ndarray:
        """Binary finding matrix of many reports: 1 where a finding is present or uncertain (U-Ones).

        Args:
            texts (`Iterable[str]`):
                Reports.

        Returns:
            `np.ndarray` of shape (N, F), dtype bool, columns in `self.names` order.
        """
        rows = []
        for text in texts:
            row = np.zeros(len(self.names), dtype=bool)
            for name, label in self.extract(text).items():
                row[self._index[name]] = label != ABSENT
            rows.append(row)
        return np.stack(rows) if rows else np.zeros((0, len(self.names)), dtype=bool)

    def ground_truth_matrix(self, findings: Sequence[Sequence[dict] | None]) -> np.ndarray:
        """Binary matrix from structured ground truth (the dataset `findings` column).

        Args:
            findings (`Sequence[list[dict]]`):
                Per sample a list of `{"finding": str, "site": str | None, "present": bool}`. A finding not listed
                is absent; "no finding" is derived like for text unless listed.

        Returns:
            `np.ndarray` of shape (N, F), dtype bool.
        """
        matrix = np.zeros((len(findings), len(self.names)), dtype=bool)
        for row, items in enumerate(findings):
            listed = set()
            for item in items or []:
                name = str(item.get("finding", "")).lower()
                if name not in self._index:
                    raise MedvlError(
                        f"ground-truth finding {name!r} (sample {row}) is not in the lexicon; "
                        f"add it to the lexicon YAML or use one of {self.names}"
                    )
                matrix[row, self._index[name]] |= bool(item.get("present"))
                listed.add(name)
            if NO_FINDING in self._index and NO_FINDING not in listed:
                others = [self._index[n] for n in self.names if n not in _NO_FINDING_EXEMPT | {NO_FINDING}]
                matrix[row, self._index[NO_FINDING]] = not matrix[row, others].any()
        return matrix


def f1_stats(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-sample sufficient statistics of per-finding F1: true positives, false positives, false negatives.

    Args:
        predicted (`np.ndarray` of shape (N, F), bool): labels to score (e.g. of the generated report).
        target (`np.ndarray` of shape (N, F), bool): labels taken as truth (reference report or ground truth).

    Returns:
        `np.ndarray` of shape (N, 3F): `[tp_1..tp_F, fp_1..fp_F, fn_1..fn_F]`.
    """
    if predicted.shape != target.shape:
        raise MedvlError(f"finding matrices differ in shape: {predicted.shape} vs {target.shape}")
    tp = predicted & target
    fp = predicted & ~target
    fn = ~predicted & target
    return np.concatenate([tp, fp, fn], axis=1).astype(np.float64)


def micro_f1(summed: np.ndarray) -> np.ndarray:
    """Micro F1 (percent) from summed `f1_stats`, shape (..., 3F) -> (...)."""
    tp, fp, fn = np.split(summed, 3, axis=-1)
    tp, fp, fn = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 100.0 * 2 * tp / np.where(denom > 0, denom, 1), 100.0)


def macro_f1(summed: np.ndarray) -> np.ndarray:
    """Macro F1 (percent) over findings with support (tp + fp + fn > 0), shape (..., 3F) -> (...)."""
    tp, fp, fn = np.split(summed, 3, axis=-1)
    denom = 2 * tp + fp + fn
    per_finding = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    supported = (denom > 0).sum(-1)
    return np.where(supported > 0, 100.0 * per_finding.sum(-1) / np.maximum(supported, 1), 100.0)


def per_finding_f1(summed: np.ndarray, names: Sequence[str]) -> dict[str, float | None]:
    """F1 (percent) of each finding from summed stats (None where the finding never occurs)."""
    tp, fp, fn = np.split(np.asarray(summed, dtype=np.float64), 3)
    out = {}
    for i, name in enumerate(names):
        denom = 2 * tp[i] + fp[i] + fn[i]
        out[name] = float(100.0 * 2 * tp[i] / denom) if denom > 0 else None
    return out
