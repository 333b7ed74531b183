# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Rule-based finding extraction from report text, in the manner of the CheXpert labeler, and finding agreement F1.

Pipeline per report (all phrases and rules are data, `evaluation/lexicon.yaml`):

1. Sections: headers such as "INDICATION:" or "COMPARISON:" open sections that are not read (they state why the
   study was done, not what it shows); with `impression_only=True` only the impression is read, when there is one.
2. Sentences: split at "." (not inside "1.5"), "!", line breaks and numbered-list markers ("1. ... 2) ...").
3. Tokens are lower-cased and inflection-normalised ("opacities" -> "opacity"), then lexicon phrases are matched
   longest-first: finding mentions, other abnormalities, negation / uncertainty / hypothetical triggers (pre and
   post), pseudo-triggers, scope terminators, qualifiers.
4. Each mention takes its state from the nearest run of adjacent triggers before it (walking back over the other
   items of a list, "no effusion, consolidation or pneumothorax", up to a terminator or a window) and after it.
   Only adjacent triggers compose ("no evidence of absence of X" affirms X); two separate negations
   ("no acute disease, no pneumonia") do not cancel. As in CheXpert, uncertainty wins over negation in a run
   ("cannot exclude", "not excluded"); hypotheticals ("evaluate for", "rule out") drop the mention.
5. Report level: present > uncertain > absent across mentions (CheXpert `stages/aggregate.py`), and "no finding"
   is present only when no observation other than support devices, including the unscored
   `other_abnormalities` (emphysema, scoliosis, ...), is present or uncertain.

Uncertain mentions are labelled `"uncertain"` by `extract`; how they count in binary matrices is the
`uncertain_as` policy: `"positive"` (U-Ones, the default), `"negative"` (U-Zeros) or `"own_class"` (no binary
matrix; use `label_matrix`), after Irvin et al., 2019 (CheXpert). Sites (left/right) are not scored.
"""

import hashlib
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
UNCERTAIN_POLICIES = ("positive", "negative", "own_class")
# Findings that do not rule out "no finding" (CheXpert labeler convention).
_NO_FINDING_EXEMPT = {"support devices"}
_OTHER = "<other abnormality>"
_RANK = {PRESENT: 2, UNCERTAIN: 1, ABSENT: 0}
# A hyphen inside a word joins two words ("ground-glass"); elsewhere ("-ve") it is a token of its own.
_INNER_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")
_TOKEN = re.compile(r"[a-z0-9]+(?:['/][a-z0-9]+)*|[^\sa-z0-9]")
# Sentence ends: "." unless between digits (1.5 cm), "!", line breaks, and list markers "2)" / "(2)".
_SENTENCE_SPLIT = re.compile(r"(?<!\d)\.|\.(?!\d)|!|\n+|(?:^|(?<=\s))\(?\d{1,2}\)(?=\s)")
# Words that continue a list inside a trigger's scope ("no effusion, consolidation, or pneumothorax").
_LIST_WORDS = {",", "or", "and", "nor", "/", "and/or", "either", "any", "a", "an", "the", "of", "to", "-"}
# How many other words a pre-trigger reaches over (NegEx uses 5 tokens; list items do not count here) and how
# far a post-trigger may follow its mention ("effusion on the left is not seen").
_PRE_WINDOW, _POST_WINDOW, _QUALIFIER_WINDOW = 6, 4, 8
_DEFAULT_KEYS = {
    "version",
    "findings",
    "other_abnormalities",
    "ignore",
    "qualifiers",
    "negation",
    "uncertainty",
    "hypothetical",
    "termination",
    "sections",
    "inflections",
}


def _lemma(token: str, inflections: dict[str, str]) -> str:
    """Undo plural inflection: -ies -> -y, -sses/-xes/-ches/-shes/-zes drop "es", else a final "s" is dropped."""
    if token in inflections:
        return inflections[token]
    if len(token) <= 3 or not token.isalpha():
        return token
    if token.endswith("ies"):
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "ches", "shes", "zes")):
        return token[:-2]
    if token.endswith(("ss", "us", "is")) or not token.endswith("s"):
        return token
    return token[:-1]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(_INNER_HYPHEN.sub(" ", text.lower()))


@dataclass
class Lexicon:
    """The phrases and rules the extractor matches (see `evaluation/lexicon.yaml` for their meaning).

    Args:
        findings (`dict[str, dict]`):
            Canonical finding name -> `{"synonyms": [...], "absent": [...], "hedged": [...],
            "attributes": [{"phrases": [...], "qualifiers": group}]}`.
        negation_pre, negation_post, negation_adjacent_pre, uncertainty_pre, uncertainty_post, pseudo, termination,
        ignore, hypothetical_pre, hypothetical_post, other_abnormalities (`list[str]`):
            Trigger and phrase lists.
        qualifiers (`dict[str, dict[str, list[str]]]`):
            Qualifier group -> `{"present": [...], "absent": [...], "uncertain": [...]}`.
        sections (`dict[str, list[str]]`):
            `{"skip": [...], "impression": [...], "findings": [...]}` section header names.
        inflections (`dict[str, str]`):
            Irregular inflected form -> base form.
        version (`str`, *optional*, defaults to `"custom"`):
            Lexicon version, part of `FindingExtractor.signature`.
    """

    findings: dict[str, dict]
    negation_pre: list[str] = field(default_factory=list)
    negation_post: list[str] = field(default_factory=list)
    negation_adjacent_pre: list[str] = field(default_factory=list)
    uncertainty_pre: list[str] = field(default_factory=list)
    uncertainty_post: list[str] = field(default_factory=list)
    pseudo: list[str] = field(default_factory=list)
    termination: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    hypothetical_pre: list[str] = field(default_factory=list)
    hypothetical_post: list[str] = field(default_factory=list)
    other_abnormalities: list[str] = field(default_factory=list)
    qualifiers: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=dict)
    inflections: dict[str, str] = field(default_factory=dict)
    version: str = "custom"

    @property
    def names(self) -> list[str]:
        """Canonical finding names, in lexicon order (the column order of label matrices)."""
        return list(self.findings)


def _strings(source: str, key: str, value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MedvlError(f"{source}: {key} must be a list of phrases, got {type(value).__name__}")
    bad = [p for p in value if not isinstance(p, str)]
    if bad:
        # YAML 1.1 reads a bare `no`/`yes`/`on` as a boolean.
        raise MedvlError(f'{source}: {key} has non-string phrases {bad}; quote them, e.g. "no"')
    return [" ".join(p.lower().split()) for p in value]


def _read_qualifiers(source: str, raw: dict) -> dict:
    qualifiers = {}
    for group, entry in (raw.get("qualifiers") or {}).items():
        if not isinstance(entry, dict):
            raise MedvlError(f"{source}: qualifiers.{group} must be a mapping of present/absent/uncertain -> [...]")
        qualifiers[str(group)] = {
            state: _strings(source, f"qualifiers.{group}.{state}", entry.get(state))
            for state in (PRESENT, ABSENT, UNCERTAIN)
        }
    return qualifiers


def _read_findings(source: str, raw: dict, qualifiers: dict) -> dict:
    findings = {}
    for name, entry in raw["findings"].items():
        entry = entry or {}
        if not isinstance(entry, dict):
            raise MedvlError(f"{source}: findings.{name} must be a mapping with a `synonyms` list")
        attributes = []
        for i, attribute in enumerate(entry.get("attributes") or []):
            group = attribute.get("qualifiers") if isinstance(attribute, dict) else None
            if group not in qualifiers:
                raise MedvlError(
                    f"{source}: findings.{name}.attributes[{i}] must be {{phrases: [...], qualifiers: group}} "
                    f"with a group of `qualifiers` ({sorted(qualifiers)})"
                )
            attributes.append(
                {
                    "phrases": _strings(source, f"findings.{name}.attributes[{i}]", attribute.get("phrases")),
                    "group": group,
                }
            )
        findings[str(name).lower()] = {
            "synonyms": _strings(source, f"findings.{name}.synonyms", entry.get("synonyms")),
            "absent": _strings(source, f"findings.{name}.absent", entry.get("absent")),
            "hedged": _strings(source, f"findings.{name}.hedged", entry.get("hedged")),
            "attributes": attributes,
        }
    return findings


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """Load a finding lexicon from YAML (the packaged default `evaluation/lexicon.yaml` when `path` is None).

    Args:
        path (`str` or `Path`, *optional*):
            A YAML file shaped like the default: `findings` (required), `negation: {pre, post, adjacent_pre,
            pseudo}`, `uncertainty: {pre, post}`, `hypothetical: {pre, post}`, `termination`, `ignore`,
            `other_abnormalities`, `qualifiers`, `sections`, `inflections`, `version` (all optional).
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
    unknown = set(raw) - _DEFAULT_KEYS
    if unknown:
        raise MedvlError(
            f"{source}: unknown top-level keys {sorted(unknown)}; expected some of {sorted(_DEFAULT_KEYS)}"
        )
    qualifiers = _read_qualifiers(source, raw)
    findings = _read_findings(source, raw, qualifiers)
    groups = {key: raw.get(key) or {} for key in ("negation", "uncertainty", "hypothetical", "sections")}
    for key, value in groups.items():
        if not isinstance(value, dict):
            raise MedvlError(f"{source}: {key} must be a mapping, e.g. {{pre: [...], post: [...]}}")
    inflections = raw.get("inflections") or {}
    if not isinstance(inflections, dict):
        raise MedvlError(f"{source}: inflections must be a mapping of inflected form -> base form")
    version = raw.get("version")
    if version is None:
        # Unversioned lexicons are told apart by content, so two different ones never share a signature.
        version = "custom-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return Lexicon(
        findings=findings,
        negation_pre=_strings(source, "negation.pre", groups["negation"].get("pre")),
        negation_post=_strings(source, "negation.post", groups["negation"].get("post")),
        negation_adjacent_pre=_strings(source, "negation.adjacent_pre", groups["negation"].get("adjacent_pre")),
        uncertainty_pre=_strings(source, "uncertainty.pre", groups["uncertainty"].get("pre")),
        uncertainty_post=_strings(source, "uncertainty.post", groups["uncertainty"].get("post")),
        pseudo=_strings(source, "negation.pseudo", groups["negation"].get("pseudo")),
        termination=_strings(source, "termination", raw.get("termination")),
        ignore=_strings(source, "ignore", raw.get("ignore")),
        hypothetical_pre=_strings(source, "hypothetical.pre", groups["hypothetical"].get("pre")),
        hypothetical_post=_strings(source, "hypothetical.post", groups["hypothetical"].get("post")),
        other_abnormalities=_strings(source, "other_abnormalities", raw.get("other_abnormalities")),
        qualifiers=qualifiers,
        sections={
            k: _strings(source, f"sections.{k}", groups["sections"].get(k)) for k in ("skip", "impression", "findings")
        },
        inflections={str(k).lower(): str(v).lower() for k, v in inflections.items()},
        version=str(version),
    )


@dataclass
class _Item:
    """One matched phrase (or one plain token, `roles` empty) of a sentence."""

    text: str
    roles: dict = field(default_factory=dict)


_PRE_ROLES = ("neg_pre", "unc_pre", "hyp_pre")
_POST_ROLES = ("neg_post", "unc_post", "hyp_post")
_LIST_ROLES = ("mentions", "absent", "attributes", "qualifiers", "ignore")


class FindingExtractor:
    """Extract per-finding labels (`present` / `uncertain` / `absent`) from free-text reports.

    Args:
        lexicon (`Lexicon`, `str` or `Path`, *optional*):
            The lexicon or a YAML path; the packaged default (14 CheXpert observations + nodule + mass) when None.
        uncertain_as (`str`, *optional*, defaults to `"positive"`):
            How `positive_matrix` counts uncertain mentions: `"positive"` (CheXpert U-Ones), `"negative"`
            (U-Zeros) or `"own_class"` (no binary matrix; `label_matrix` keeps them as -1).
        impression_only (`bool`, *optional*, defaults to `False`):
            Read only the IMPRESSION section, as the CheXpert labeler does; reports without one are read whole
            (minus the skipped sections), so that findings-only reports still get labels.

    Example:
        >>> FindingExtractor().extract("No pleural effusion. Small left pneumothorax.")["pleural effusion"]
        'absent'
    """

    def __init__(
        self,
        lexicon: Lexicon | str | Path | None = None,
        uncertain_as: str = "positive",
        impression_only: bool = False,
    ):
        if uncertain_as not in UNCERTAIN_POLICIES:
            raise MedvlError(f"uncertain_as={uncertain_as!r}; expected one of {list(UNCERTAIN_POLICIES)}")
        self.lexicon = lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon)
        self.uncertain_as = uncertain_as
        self.impression_only = bool(impression_only)
        self.names = self.lexicon.names
        self._index = {name: i for i, name in enumerate(self.names)}
        lex = self.lexicon
        self._inflections = lex.inflections
        self._roles: dict[tuple, dict] = {}
        flags = [
            ("neg_pre", lex.negation_pre),
            ("neg_post", lex.negation_post),
            ("neg_adj", lex.negation_adjacent_pre),
            ("unc_pre", lex.uncertainty_pre),
            ("unc_post", lex.uncertainty_post),
            ("hyp_pre", lex.hypothetical_pre),
            ("hyp_post", lex.hypothetical_post),
            ("pseudo", lex.pseudo),
            ("term", lex.termination),
            ("ignore", lex.ignore),
        ]
        for role, phrases in flags:
            for phrase in phrases:
                self._add(phrase)[role] = True
        for name, entry in lex.findings.items():
            for phrase in entry["synonyms"]:
                self._add(phrase).setdefault("mentions", []).append((name, False))
            for phrase in entry["hedged"]:
                self._add(phrase).setdefault("mentions", []).append((name, True))
            for phrase in entry["absent"]:
                self._add(phrase).setdefault("absent", []).append(name)
            for attribute in entry["attributes"]:
                for phrase in attribute["phrases"]:
                    self._add(phrase).setdefault("attributes", []).append((name, attribute["group"]))
        for phrase in lex.other_abnormalities:
            self._add(phrase).setdefault("mentions", []).append((_OTHER, False))
        for group, states in lex.qualifiers.items():
            for state, phrases in states.items():
                for phrase in phrases:
                    self._add(phrase).setdefault("qualifiers", {})[group] = state
        # Phrases by first token, exact and prefix ("opaci*"), for the longest-match scan.
        self._by_first: dict[str, list[tuple]] = {}
        self._by_prefix: list[tuple[str, tuple]] = []
        for key in self._roles:
            if key[0].endswith("*"):
                self._by_prefix.append((key[0][:-1], key))
            else:
                self._by_first.setdefault(key[0], []).append(key)
        self._section_kind = {
            name: kind for kind in ("skip", "impression", "findings") for name in lex.sections.get(kind, [])
        }
        names = sorted(self._section_kind, key=len, reverse=True)
        self._headers = (
            re.compile(
                r"(?:^|(?<=[.;]))[ \t]*(?P<name>"
                + "|".join(r"\s+".join(map(re.escape, n.split())) for n in names)
                + r")[ \t]*:",
                re.M,
            )
            if names
            else None
        )

    @property
    def signature(self) -> str:
        """What decides the labels: lexicon version and options, e.g. `findings:v2|uncertain_as=positive|impression_only=false`."""
        version = self.lexicon.version
        version = f"v{version}" if version[:1].isdigit() else version
        return (
            f"findings:{version}|uncertain_as={self.uncertain_as}|impression_only={str(self.impression_only).lower()}"
        )

    def _add(self, phrase: str) -> dict:
        tokens = []
        for token in _tokens(phrase):
            if token == "*" and tokens:
                tokens[-1] += "*"
            else:
                tokens.append(_lemma(token, self._inflections))
        if not tokens:
            raise MedvlError(f"lexicon phrase {phrase!r} has no words")
        return self._roles.setdefault(tuple(tokens), {})

    def _sections(self, text: str) -> list[str]:
        if self._headers is None:
            return [text]
        segments, kind, pos = [], "findings", 0
        for m in self._headers.finditer(text):
            segments.append((kind, text[pos : m.start()]))
            kind, pos = self._section_kind[" ".join(m.group("name").split())], m.end()
        segments.append((kind, text[pos:]))
        if self.impression_only and any(kind == "impression" for kind, _ in segments):
            return [body for kind, body in segments if kind == "impression"]
        return [body for kind, body in segments if kind != "skip"]

    def _items(self, sentence: str) -> list[_Item]:
        tokens = _tokens(sentence)
        lemmas = [_lemma(t, self._inflections) for t in tokens]
        items, i, n = [], 0, len(tokens)
        while i < n:
            candidates = self._by_first.get(lemmas[i], []) + [
                key for prefix, key in self._by_prefix if lemmas[i].startswith(prefix)
            ]
            best = None
            for key in candidates:
                size = len(key)
                if i + size > n or (best is not None and size <= len(best)):
                    continue
                if all(
                    lemmas[i + j].startswith(p[:-1]) if p.endswith("*") else lemmas[i + j] == p
                    for j, p in enumerate(key)
                ):
                    best = key
            if best is None:
                items.append(_Item(lemmas[i]))
                i += 1
            else:
                items.append(_Item(" ".join(tokens[i : i + len(best)]), self._roles[best]))
                i += len(best)
        return items

    @staticmethod
    def _pre_run(items: list[_Item], k: int) -> list[dict]:
        """Nearest run of adjacent pre-triggers before item k, within its scope (empty if none)."""
        words, j = 0, k - 1
        while j >= 0:
            roles = items[j].roles
            if "term" in roles or "pseudo" in roles:
                return []
            if any(r in roles for r in _PRE_ROLES):
                run = [roles]
                while j > 0 and any(r in items[j - 1].roles for r in _PRE_ROLES):
                    j -= 1
                    run.append(items[j].roles)
                return run
            if "neg_adj" in roles and words <= 1:
                return [{"neg_pre": True}]
            if any(r in roles for r in _POST_ROLES):
                # A post-trigger here closes an earlier mention's clause ("effusion is not seen, pneumothorax").
                return []
            if not any(r in roles for r in _LIST_ROLES) and items[j].text not in _LIST_WORDS:
                words += 1
                if words > _PRE_WINDOW:
                    return []
            j -= 1
        return []

    @staticmethod
    def _post_run(items: list[_Item], k: int) -> list[dict]:
        """Nearest run of adjacent post-triggers after item k ("effusion and pneumothorax are not seen")."""
        words, j, n = 0, k + 1, len(items)
        while j < n:
            roles = items[j].roles
            if any(r in roles for r in _POST_ROLES):
                run = [roles]
                while j + 1 < n and any(r in items[j + 1].roles for r in _POST_ROLES):
                    j += 1
                    run.append(items[j].roles)
                return run
            if "term" in roles or "pseudo" in roles or any(r in roles for r in _PRE_ROLES):
                return []
            if "mentions" in roles or "attributes" in roles:
                # Reach over another mention only as a list ("A and B are not seen"), not across a clause.
                if words:
                    return []
            elif not any(r in roles for r in _LIST_ROLES) and items[j].text not in _LIST_WORDS:
                words += 1
                if words > _POST_WINDOW:
                    return []
            j += 1
        return []

    @staticmethod
    def _qualifier(items: list[_Item], k: int, group: str) -> str | None:
        """State of the nearest qualifier of `group` in item k's clause (forward wins a tie)."""
        best = None
        for direction in (1, -1):
            words, j = 0, k + direction
            while 0 <= j < len(items) and words <= _QUALIFIER_WINDOW:
                roles = items[j].roles
                if "term" in roles:
                    break
                state = roles.get("qualifiers", {}).get(group)
                if state is not None:
                    candidate = (words, direction == -1, state)
                    best = candidate if best is None or candidate < best else best
                    break
                if not ("mentions" in roles or "attributes" in roles) and items[j].text not in _LIST_WORDS:
                    words += 1
                j += direction
        return best[2] if best else None

    def _sentence_labels(self, sentence: str) -> list[tuple[str, str]]:
        items = self._items(sentence)
        labels = []
        for k, item in enumerate(items):
            roles = item.roles
            if "ignore" in roles:
                continue
            labels.extend((name, ABSENT) for name in roles.get("absent", []))
            targets = [(name, PRESENT if not hedged else UNCERTAIN) for name, hedged in roles.get("mentions", [])]
            if not targets:
                for name, group in roles.get("attributes", []):
                    state = self._qualifier(items, k, group)
                    if state is not None:
                        targets.append((name, state))
            if not targets:
                continue
            run = self._pre_run(items, k) + self._post_run(items, k)
            if any("hyp_pre" in r or "hyp_post" in r for r in run):
                continue
            # CheXpert order: uncertainty patterns ("cannot exclude", "not excluded") win over the negation
            # they contain; an odd number of adjacent negations negates ("not without X" affirms).
            uncertain = any("unc_pre" in r or "unc_post" in r for r in run)
            negated = sum("neg_pre" in r or "neg_post" in r for r in run) % 2 == 1
            for name, state in targets:
                if state == ABSENT or (negated and not uncertain):
                    labels.append((name, ABSENT))
                elif uncertain:
                    labels.append((name, UNCERTAIN))
                else:
                    labels.append((name, state))
        return labels

    def sentences(self, text: str) -> list[str]:
        """The sentences of a report that are read (skipped sections removed, lists split).

        Args:
            text (`str`):
                The report.
        """
        out = []
        for body in self._sections((text or "").lower()):
            out.extend(s for s in _SENTENCE_SPLIT.split(body) if s and s.strip())
        return out

    def extract(self, text: str) -> dict[str, str]:
        """Label the findings of one report.

        Args:
            text (`str`):
                The report.

        Returns:
            `dict[str, str]`: finding -> `"present"`, `"uncertain"` or `"absent"` for every finding the report
            mentions, plus `"no finding"` (always set, derived).
        """
        result: dict[str, str] = {}
        other_abnormality = False
        for sentence in self.sentences(text):
            for name, label in self._sentence_labels(sentence):
                if name == _OTHER:
                    other_abnormality |= label != ABSENT
                elif name not in result or _RANK[label] > _RANK[result[name]]:
                    result[name] = label
        if NO_FINDING in self._index:
            # CheXpert stages/aggregate.py: "No Finding" only when nothing but support devices is 1 or u, where
            # its no_finding.txt phrases (our `other_abnormalities`) count too. The uncertain policy does not
            # change it: CheXpert applies U-Ones/U-Zeros to the labels afterwards, not to this rule.
            abnormal = other_abnormality or any(
                label != ABSENT for name, label in result.items() if name not in _NO_FINDING_EXEMPT | {NO_FINDING}
            )
            result[NO_FINDING] = ABSENT if abnormal else PRESENT
        return result

    def label_matrix(self, texts: Iterable[str]) -> np.ndarray:
        """Three-class label matrix in CheXpert coding: 1 present, 0 absent, -1 uncertain, NaN not mentioned.

        Args:
            texts (`Iterable[str]`):
                Reports.

        Returns:
            `np.ndarray` of shape (N, F), dtype float64, columns in `self.names` order.
        """
        code = {PRESENT: 1.0, ABSENT: 0.0, UNCERTAIN: -1.0}
        rows = []
        for text in texts:
            row = np.full(len(self.names), np.nan)
            for name, label in self.extract(text).items():
                row[self._index[name]] = code[label]
            rows.append(row)
        return np.stack(rows) if rows else np.zeros((0, len(self.names)))

    def positive_matrix(self, texts: Iterable[str]) -> np.ndarray:
        """Binary finding matrix of many reports: 1 where a finding is present, or uncertain under U-Ones.

        Args:
            texts (`Iterable[str]`):
                Reports.

        Returns:
            `np.ndarray` of shape (N, F), dtype bool, columns in `self.names` order.
        """
        if self.uncertain_as == "own_class":
            raise MedvlError(
                "uncertain_as='own_class' keeps uncertain apart, so there is no binary matrix; use label_matrix "
                "(-1 = uncertain) or uncertain_as='positive'/'negative'"
            )
        labels = self.label_matrix(texts)
        positive = labels == 1
        if self.uncertain_as == "positive":
            positive |= labels == -1
        return positive

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


def load_labelled_sentences(path: str | Path) -> list[tuple[str, dict[str, str], str]]:
    """Read a labelled sentence table (`tests/data/finding_sentences.tsv`): rows of text, labels and tag.

    Args:
        path (`str` or `Path`):
            Tab-separated file with a `text\tlabels\ttag` header; `#` lines are comments, `\\n` in text is a line
            break, labels are `finding=state; ...` (the exact expected `FindingExtractor.extract` output).

    Returns:
        `list[tuple[str, dict[str, str], str]]`: (text, expected labels, tag) per row.
    """
    rows = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("#") or line.startswith("text\t"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise MedvlError(
                f"{path}:{number}: expected 3 tab-separated columns (text, labels, tag), got {len(parts)}"
            )
        text, labels, tag = parts
        expected = {}
        for pair in filter(None, (p.strip() for p in labels.split(";"))):
            name, _, state = pair.partition("=")
            if state not in _RANK:
                raise MedvlError(f"{path}:{number}: label {pair!r} is not finding=present|absent|uncertain")
            expected[name.strip()] = state
        rows.append((text.replace("\\n", "\n"), expected, tag))
    return rows


def per_state_precision_recall(
    predicted: Sequence[dict[str, str]], expected: Sequence[dict[str, str]], names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision and recall (percent) of each state over all (sentence, finding) pairs.

    A finding missing from a label dict is "not mentioned", a class of its own.

    Args:
        predicted (`Sequence[dict[str, str]]`): `extract` outputs.
        expected (`Sequence[dict[str, str]]`): gold labels, same order.
        names (`Sequence[str]`): the findings to score (e.g. `FindingExtractor.names`).

    Returns:
        `dict[str, dict[str, float]]`: state -> `{"precision", "recall", "support"}`.
    """
    states = [PRESENT, UNCERTAIN, ABSENT, "not mentioned"]
    pairs = [
        (p.get(n, "not mentioned"), e.get(n, "not mentioned"))
        for p, e in zip(predicted, expected, strict=True)
        for n in names
    ]
    out = {}
    for state in states:
        tp = sum(p == state and e == state for p, e in pairs)
        n_pred = sum(p == state for p, _ in pairs)
        n_gold = sum(e == state for _, e in pairs)
        out[state] = {
            "precision": 100.0 * tp / n_pred if n_pred else float("nan"),
            "recall": 100.0 * tp / n_gold if n_gold else float("nan"),
            "support": n_gold,
        }
    return out


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
