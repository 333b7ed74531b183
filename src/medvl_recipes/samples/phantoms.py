# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Procedural phantom studies with known ground truth: a drawn grayscale image, a report and structured findings.

A study is sampled in two steps so that text alone is cheap (`report_corpus` trains tokenizers on it):
`sample_spec` picks the study type, the findings and the report wording; `render_study` draws the image so
that every present finding is visible WHERE the report puts it. Everything is deterministic from a seed
(one `numpy.random.Generator` per study, never the global RNG).

Radiographs are drawn in the usual display convention: the patient's right is on the image's left.

Findings are drawn to be seen at the tiny models' resolution (the tiny Mllama reads one 112-px tile in 14-px
patches): a nodule spans about a patch there, a mass two, fracture lines are a few pixels wide, a pneumothorax is
the dark lung without vascular markings; and each study is moved only a little (`_vary`). With findings a third
smaller and twice the jitter, a tower trained on the study type and findings directly (a linear probe, 600
studies) learned the study type but not the findings (within-type AUC 0.52-0.74).
"""

import logging
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


logger = logging.getLogger(__name__)

MAX_SIDE = 384

# Canonical finding names (the eval lexicon) that phantoms can draw.
PHANTOM_FINDINGS = (
    "nodule",
    "mass",
    "pleural effusion",
    "pneumothorax",
    "cardiomegaly",
    "consolidation",
    "fracture",
)


@dataclass(frozen=True)
class StudyType:
    """One kind of phantom study: modality, region, the report header and which findings it can show.

    Args:
        name (`str`): Identifier, e.g. `"chest_xr_pa"`.
        modality (`str`): DICOM modality code (`"DX"`, `"CT"`, `"MR"`).
        body_part (`str`): DICOM BodyPartExamined value.
        headers (`tuple[str, ...]`): Paraphrases of the first report sentence naming modality and view.
        candidates (`dict[str, tuple]`): Finding -> the sites it can appear at (`None` for no site).
        negatable (`dict[str, tuple[str, ...]]`): Finding -> noun phrases used when the report negates it.
        size (`tuple[int, int]`): Nominal (width, height); each study jitters it.
    """

    name: str
    modality: str
    body_part: str
    headers: tuple[str, ...]
    candidates: dict
    negatable: dict
    size: tuple[int, int]


_CHEST_ZONES = ("right upper zone", "left upper zone", "right lower zone", "left lower zone")
_SIDES = ("right", "left")

STUDY_TYPES: dict[str, StudyType] = {
    t.name: t
    for t in (
        StudyType(
            "chest_xr_pa",
            "DX",
            "CHEST",
            ("PA chest radiograph.", "Frontal chest radiograph.", "Chest X-ray, PA view."),
            {
                "nodule": _CHEST_ZONES,
                "mass": _CHEST_ZONES,
                "pleural effusion": _SIDES,
                "pneumothorax": _SIDES,
                "cardiomegaly": (None,),
                "consolidation": ("right lower zone", "left lower zone", "right upper zone", "left upper zone"),
                "fracture": ("right rib", "left rib"),
            },
            {
                "pleural effusion": ("pleural effusion",),
                "pneumothorax": ("pneumothorax",),
                "consolidation": ("focal consolidation", "consolidation"),
                "cardiomegaly": ("cardiomegaly",),
                "nodule": ("pulmonary nodule", "nodule"),
            },
            (320, 384),
        ),
        StudyType(
            "chest_xr_lateral",
            "DX",
            "CHEST",
            ("Lateral chest radiograph.", "Chest X-ray, lateral view."),
            {"pleural effusion": (None,), "cardiomegaly": (None,), "fracture": ("thoracic vertebra",)},
            {
                "pleural effusion": ("pleural effusion",),
                "cardiomegaly": ("cardiomegaly",),
                "fracture": ("vertebral fracture", "fracture"),
            },
            (320, 352),
        ),
        StudyType(
            "chest_ct",
            "CT",
            "CHEST",
            ("Axial CT of the chest.", "Chest CT, axial image.", "Axial computed tomography of the chest."),
            {
                "nodule": ("right lung", "left lung"),
                "mass": ("right lung", "left lung"),
                "pleural effusion": _SIDES,
                "pneumothorax": _SIDES,
                "consolidation": ("right lung", "left lung"),
            },
            {
                "pleural effusion": ("pleural effusion",),
                "pneumothorax": ("pneumothorax",),
                "consolidation": ("consolidation",),
                "nodule": ("pulmonary nodule", "nodule"),
                "mass": ("lung mass", "mass"),
            },
            (320, 288),
        ),
        StudyType(
            "head_ct",
            "CT",
            "HEAD",
            ("Axial CT of the head.", "Head CT, axial image.", "Noncontrast axial CT of the head."),
            {
                "mass": ("right frontal lobe", "left frontal lobe", "right occipital lobe", "left occipital lobe"),
                "fracture": ("right parietal bone", "left parietal bone"),
            },
            {"mass": ("intracranial mass", "mass"), "fracture": ("skull fracture", "fracture")},
            (256, 288),
        ),
        StudyType(
            "abdomen_ct",
            "CT",
            "ABDOMEN",
            ("Axial CT of the abdomen.", "Abdominal CT, axial image.", "Axial computed tomography of the abdomen."),
            {"mass": ("liver", "spleen", "right kidney", "left kidney"), "fracture": ("vertebral body",)},
            {"mass": ("focal mass", "mass"), "fracture": ("vertebral fracture", "fracture")},
            (320, 256),
        ),
        StudyType(
            "brain_mr",
            "MR",
            "BRAIN",
            ("Axial T2 MRI of the brain.", "Brain MRI, axial T2 image.", "Axial T2-weighted MR image of the brain."),
            {"mass": ("right frontal lobe", "left frontal lobe", "right occipital lobe", "left occipital lobe")},
            {"mass": ("intracranial mass", "mass")},
            (240, 288),
        ),
        StudyType(
            "knee_xr",
            "DX",
            "KNEE",
            ("AP radiograph of the knee.", "Knee X-ray, AP view.", "Frontal radiograph of the knee."),
            {"fracture": ("distal femur", "proximal tibia", "proximal fibula")},
            {"fracture": ("fracture", "acute fracture")},
            (224, 352),
        ),
        StudyType(
            "hand_xr",
            "DX",
            "HAND",
            ("PA radiograph of the hand.", "Hand X-ray, PA view.", "Frontal radiograph of the hand."),
            {
                "fracture": (
                    "second metacarpal",
                    "third metacarpal",
                    "fourth metacarpal",
                    "fifth metacarpal",
                    "distal radius",
                )
            },
            {"fracture": ("fracture", "acute fracture")},
            (256, 336),
        ),
    )
}

# Chest studies dominate the real corpora, so they dominate the phantoms too.
_TYPE_WEIGHTS = {
    "chest_xr_pa": 0.30,
    "chest_xr_lateral": 0.10,
    "chest_ct": 0.16,
    "head_ct": 0.11,
    "abdomen_ct": 0.10,
    "brain_mr": 0.09,
    "knee_xr": 0.07,
    "hand_xr": 0.07,
}

# Present-finding sentence frames. `{site}` / `{Site}` is the site, `{adj}` an optional size word.
_PRESENT_TEMPLATES = {
    "nodule": (
        "There is a {adj}nodule in the {site}.",
        "A {adj}nodule is seen in the {site}.",
        "{Site} nodule is present.",
    ),
    "mass": (
        "There is a {adj}mass in the {site}.",
        "A {adj}mass is seen in the {site}.",
        "{Site} mass is present.",
    ),
    "pleural effusion": (
        "There is a {adj}{site} pleural effusion.",
        "A {adj}{site} pleural effusion is present.",
        "{Site} pleural effusion is seen.",
    ),
    "pneumothorax": (
        "There is a {adj}{site} pneumothorax.",
        "A {adj}{site} pneumothorax is seen.",
        "{Site} pneumothorax is present.",
    ),
    "cardiomegaly": (
        "There is cardiomegaly.",
        "The heart is enlarged, consistent with cardiomegaly.",
        "Cardiomegaly is present.",
    ),
    "consolidation": (
        "There is consolidation in the {site}.",
        "Airspace consolidation is seen in the {site}.",
        "{Site} consolidation is present.",
    ),
    "fracture": (
        "There is a fracture of the {site}.",
        "A fracture of the {site} is seen.",
        "{Site} fracture is present.",
    ),
}
_SITELESS_PRESENT = {
    "pleural effusion": ("There is a {adj}pleural effusion.", "A {adj}pleural effusion is present."),
}
_ADJECTIVES = {
    "nodule": ("", "small ", "solitary "),
    "mass": ("", "large "),
    "pleural effusion": ("", "small ", "moderate "),
    "pneumothorax": ("", "small ", "moderate "),
}
_NEGATION_TEMPLATES = ("No {phrase}.", "There is no {phrase}.", "No evidence of {phrase}.")
_NORMAL_SENTENCES = ("No acute finding.", "No acute findings.", "Normal study with no acute finding.")


@dataclass
class StudySpec:
    """What a phantom study shows and says; `render_study` turns it into pixels.

    Args:
        study_type (`str`): Key of `STUDY_TYPES`.
        seed (`int`): The seed everything about this study derives from.
        size (`tuple[int, int]`): Image (width, height), max side <= `MAX_SIDE`.
        header (`str`): First report sentence (modality, region, view).
        sentences (`list[str]`): Finding sentences, present and negated, in report order.
        impression (`str`): A one-sentence summary (Open-I style IMPRESSION).
        findings (`list[dict]`): `{"finding", "site", "present"}` for every present and negated finding.
        severity (`dict[str, str]`): Finding -> the size word used (drawing scales with it).
    """

    study_type: str
    seed: int
    size: tuple[int, int]
    header: str
    sentences: list[str]
    impression: str
    findings: list[dict]
    severity: dict = field(default_factory=dict)

    @property
    def modality(self) -> str:
        return STUDY_TYPES[self.study_type].modality

    @property
    def body_part(self) -> str:
        return STUDY_TYPES[self.study_type].body_part

    @property
    def findings_text(self) -> str:
        """The finding sentences only (Open-I FINDINGS section)."""
        return " ".join(self.sentences)

    @property
    def report(self) -> str:
        """The full report: header, then the finding sentences."""
        return " ".join([self.header, *self.sentences])

    @property
    def present(self) -> list[dict]:
        return [f for f in self.findings if f["present"] and f["finding"] != "no finding"]


@dataclass
class PhantomStudy:
    """A rendered phantom: the spec plus an 8-bit grayscale image.

    Args:
        spec (`StudySpec`): The sampled study.
        image (`PIL.Image.Image`): Mode "L" image.
    """

    spec: StudySpec
    image: Image.Image


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _present_sentence(rng: np.random.Generator, finding: str, site: str | None, adj: str) -> str:
    templates = (
        _SITELESS_PRESENT.get(finding, _PRESENT_TEMPLATES[finding]) if site is None else _PRESENT_TEMPLATES[finding]
    )
    text = _pick(rng, templates).format(adj=adj, site=site, Site=_capitalize(site or ""))
    return _capitalize(" ".join(text.split()))


def sample_spec(seed: int, study_type: str | None = None) -> StudySpec:
    """Sample a study's type, findings and report wording (no drawing).

    Args:
        seed (`int`): Seed of this study's `numpy.random.Generator`.
        study_type (`str`, *optional*): Force a key of `STUDY_TYPES`; sampled by weight when `None`.

    Returns:
        `StudySpec`: whose `findings` agree with `report`: each present finding is stated with its site and
        each absent one is explicitly negated.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    names = list(_TYPE_WEIGHTS)
    weights = np.array([_TYPE_WEIGHTS[n] for n in names])
    chosen = study_type or names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if chosen not in STUDY_TYPES:
        raise ValueError(f"Unknown phantom study type {chosen!r}; expected one of {sorted(STUDY_TYPES)}.")
    stype = STUDY_TYPES[chosen]

    width, height = stype.size
    scale = rng.uniform(0.8, 1.0)
    aspect = rng.uniform(0.92, 1.08)
    width = int(min(MAX_SIDE, round(width * scale * aspect)))
    height = int(min(MAX_SIDE, round(height * scale)))

    # About a third of studies are normal; the others show 1-3 distinct findings (fewer where fewer exist).
    candidates = list(stype.candidates)
    n_max = min(3, len(candidates))
    n_present = int(rng.choice(n_max + 1, p=_count_probs(n_max)))
    present_names = [candidates[i] for i in sorted(rng.choice(len(candidates), size=n_present, replace=False))]

    sentences: list[str] = []
    findings: list[dict] = []
    severity: dict = {}
    for name in present_names:
        site = _pick(rng, stype.candidates[name])
        adj = _pick(rng, _ADJECTIVES.get(name, ("",)))
        severity[name] = adj.strip()
        sentences.append(_present_sentence(rng, name, site, adj))
        findings.append({"finding": name, "site": site, "present": True})

    negated = [name for name in stype.negatable if name not in present_names and rng.random() < 0.85]
    if not negated:
        negated = [name for name in stype.negatable if name not in present_names][:1]
    # Real reports often fold effusion and pneumothorax into one negated sentence.
    if "pleural effusion" in negated and "pneumothorax" in negated and rng.random() < 0.4:
        negated.remove("pneumothorax")
        negated.remove("pleural effusion")
        sentences.append(
            _pick(rng, ("No pleural effusion or pneumothorax.", "There is no pleural effusion or pneumothorax."))
        )
        findings.append({"finding": "pleural effusion", "site": None, "present": False})
        findings.append({"finding": "pneumothorax", "site": None, "present": False})
    for name in negated:
        phrase = _pick(rng, stype.negatable[name])
        sentences.append(_pick(rng, _NEGATION_TEMPLATES).format(phrase=phrase))
        findings.append({"finding": name, "site": None, "present": False})

    if present_names:
        summary = " and ".join(
            f"{f['site']} {f['finding']}" if f["site"] else f["finding"] for f in findings if f["present"]
        )
        impression = _capitalize(summary) + "."
    else:
        normal = _pick(rng, _NORMAL_SENTENCES)
        sentences.append(normal)
        findings.append({"finding": "no finding", "site": None, "present": True})
        impression = normal

    return StudySpec(
        study_type=chosen,
        seed=seed,
        size=(width, height),
        header=_pick(rng, stype.headers),
        sentences=sentences,
        impression=impression,
        findings=findings,
        severity=severity,
    )


def _count_probs(n_max: int) -> list[float]:
    probs = [0.34, 0.33, 0.21, 0.12][: n_max + 1]
    total = sum(probs)
    return [p / total for p in probs]


def report_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Reports from the phantom grammar, e.g. to train the tiny models' tokenizers.

    Args:
        n (`int`, *optional*, defaults to 2000): Number of reports.
        seed (`int`, *optional*, defaults to 0): Base seed; report `i` uses seed `seed * 1_000_003 + i`.

    Returns:
        `list[str]`: `n` full reports (header and finding sentences). The Open-I impressions reuse their words.
    """
    return [sample_spec(seed * 1_000_003 + i).report for i in range(n)]


class _Canvas:
    """A float image in [0, 1] with the few drawing operations the phantoms need."""

    def __init__(self, width: int, height: int, background: float = 0.0):
        self.w, self.h = width, height
        self.a = np.full((height, width), background, dtype=np.float32)
        self.y, self.x = np.mgrid[0:height, 0:width].astype(np.float32)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        """Boolean mask of an ellipse given in fractions of width/height."""
        return ((self.x - cx * self.w) / (rx * self.w)) ** 2 + ((self.y - cy * self.h) / (ry * self.h)) ** 2 <= 1.0

    def box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return (self.x >= x0 * self.w) & (self.x <= x1 * self.w) & (self.y >= y0 * self.h) & (self.y <= y1 * self.h)

    def strokes(self, draw_fn) -> np.ndarray:
        """Mask drawn with PIL (lines, arcs, polygons): `draw_fn(ImageDraw, w, h)`."""
        layer = Image.new("L", (self.w, self.h), 0)
        draw_fn(ImageDraw.Draw(layer), self.w, self.h)
        return np.asarray(layer) > 127

    def band(self, p0: tuple, p1: tuple, half_width: float) -> np.ndarray:
        """Pixels within `half_width` (pixels) of the segment p0-p1 (fractions)."""
        x0, y0, x1, y1 = p0[0] * self.w, p0[1] * self.h, p1[0] * self.w, p1[1] * self.h
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((self.x - x0) * dx + (self.y - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
        return (self.x - x0 - t * dx) ** 2 + (self.y - y0 - t * dy) ** 2 <= half_width**2

    def paint(self, mask: np.ndarray, value: float, alpha: float = 1.0) -> None:
        self.a[mask] = self.a[mask] * (1 - alpha) + value * alpha

    def blob(self, rng: np.random.Generator, mask: np.ndarray, value: float, density: float = 0.55) -> None:
        """Patchy, cloud-like opacity inside `mask` (consolidation)."""
        noise = rng.random((self.h // 8 + 2, self.w // 8 + 2)).astype(np.float32)
        noise = np.asarray(Image.fromarray(noise, mode="F").resize((self.w, self.h), Image.BICUBIC))
        patch = mask & (noise > 1 - density)
        self.paint(patch, value, 0.85)
        self.paint(mask & ~patch, value, 0.45)

    def finish(self, rng: np.random.Generator, noise: float = 0.025, blur: float = 0.8) -> Image.Image:
        arr = self.a + rng.normal(0.0, noise, self.a.shape).astype(np.float32)
        img = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
        return img.filter(ImageFilter.GaussianBlur(blur)) if blur else img


def _side_x(site: str | None, right_x: float, left_x: float) -> float:
    # Display convention: patient's right on the image's left.
    return left_x if site and site.startswith("left") else right_x


def _lesion(c: _Canvas, rng, cx, cy, radius, value, lobes: int = 1) -> None:
    r = radius / c.w
    mask = c.ellipse(cx, cy, r, r * c.w / c.h)
    for _ in range(lobes - 1):
        ang = rng.uniform(0, 2 * np.pi)
        ox, oy = np.cos(ang) * r * 0.7, np.sin(ang) * r * 0.7 * c.w / c.h
        mask |= c.ellipse(cx + ox, cy + oy, r * 0.7, r * 0.7 * c.w / c.h)
    c.paint(mask, value)


def _lung_markings(c: _Canvas, rng: np.random.Generator, x: float, y: float, mask: np.ndarray) -> None:
    # Vascular markings fanning out from the hilum; a pneumothorax is the dark space without them.
    hilum_x = x + (0.07 if x < 0.5 else -0.07)
    for _ in range(7):
        ang = rng.uniform(-np.pi, np.pi)
        end = (x + 0.13 * np.cos(ang), y + 0.26 * np.sin(ang))
        c.paint(c.band((hilum_x, y), end, max(1.0, c.w / 160)) & mask, 0.34)


def _draw_chest_pa(spec: StudySpec, rng: np.random.Generator) -> Image.Image:
    c = _Canvas(*spec.size, background=0.04)
    present = {f["finding"]: f["site"] for f in spec.present}
    c.paint(c.ellipse(0.5, 0.6, 0.49, 0.6), 0.42)
    lungs = {"right": (0.31, 0.45), "left": (0.69, 0.45)}
    lung_masks = {side: c.ellipse(x, y, 0.15, 0.3) for side, (x, y) in lungs.items()}
    for side, mask in lung_masks.items():
        c.paint(mask, 0.2)
        _lung_markings(c, rng, *lungs[side], mask)
    c.paint(c.box(0.45, 0.08, 0.55, 0.85), 0.55)
    heart_rx, heart_ry = (0.23, 0.17) if "cardiomegaly" in present else (0.14, 0.12)
    c.paint(c.ellipse(0.55, 0.64, heart_rx, heart_ry), 0.6)

    def zone_centre(site):
        side = "left" if site.startswith("left") else "right"
        x, y = lungs[side]
        return x + rng.uniform(-0.04, 0.04), (y - 0.13 if "upper" in site else y + 0.12) + rng.uniform(-0.03, 0.03)

    if "consolidation" in present:
        x, y = zone_centre(present["consolidation"])
        side = "left" if present["consolidation"].startswith("left") else "right"
        c.blob(rng, c.ellipse(x, y, 0.13, 0.13) & lung_masks[side], 0.72, density=0.7)
    if "nodule" in present:
        x, y = zone_centre(present["nodule"])
        _lesion(c, rng, x, y, c.w * (0.05 if spec.severity.get("nodule") == "small" else 0.065), 0.92)
    if "mass" in present:
        x, y = zone_centre(present["mass"])
        _lesion(c, rng, x, y, c.w * 0.11, 0.88, lobes=3)
    if "pleural effusion" in present:
        side = present["pleural effusion"]
        x, y = lungs[side]
        top = 0.56 if spec.severity.get("pleural effusion") == "small" else 0.48
        # Meniscus: the fluid climbs the lateral chest wall.
        lateral = np.abs(c.x / c.w - 0.5) - abs(x - 0.5)
        c.paint(lung_masks[side] & (c.y / c.h > top - 0.6 * np.clip(lateral, 0, None)), 0.58)
    if "pneumothorax" in present:
        side = present["pneumothorax"]
        x, y = lungs[side]
        shift = 0.05 if x > 0.5 else -0.05
        shrink = 0.55 if spec.severity.get("pneumothorax") == "moderate" else 0.68
        collapsed = c.ellipse(x - shift, y + 0.04, 0.15 * shrink, 0.3 * 0.8)
        c.paint(lung_masks[side] & ~collapsed, 0.0)
        edge = c.ellipse(x - shift, y + 0.04, 0.15 * shrink + 0.008, 0.3 * 0.8 + 0.006) & ~collapsed
        c.paint(edge & lung_masks[side], 0.5)

    fractured = present.get("fracture")
    broken_rib = int(rng.integers(2, 6))

    def ribs(draw, w, h):
        for sign in (-1, 1):
            for i in range(9):
                y0 = (0.17 + 0.07 * i) * h
                x0, x1 = (0.5 + sign * 0.04) * w, (0.5 + sign * 0.36) * w
                box = [min(x0, x1), y0, max(x0, x1), y0 + 0.16 * h]
                start, end = (180, 300) if sign < 0 else (240, 360)
                draw.arc(box, start, end, fill=255, width=max(2, w // 90))

    c.paint(c.strokes(ribs) & c.ellipse(0.5, 0.5, 0.46, 0.42), 0.75, 0.3)
    c.paint(
        c.strokes(lambda d, w, h: d.line([(0.12 * w, 0.12 * h), (0.46 * w, 0.16 * h)], fill=255, width=w // 40)),
        0.7,
        0.6,
    )
    c.paint(
        c.strokes(lambda d, w, h: d.line([(0.88 * w, 0.12 * h), (0.54 * w, 0.16 * h)], fill=255, width=w // 40)),
        0.7,
        0.6,
    )
    if fractured:
        side_x = 0.18 if fractured.startswith("right") else 0.82
        y = 0.2 + 0.07 * broken_rib
        # A lucent gap across the rib and a bright, stepped-off bar (the displaced fragment), not a round opacity
        # that could pass for a nodule.
        c.paint(c.band((side_x - 0.03, y - 0.04), (side_x + 0.03, y + 0.04), max(3.0, c.w / 40)), 0.02)
        step = 0.06 if side_x < 0.5 else -0.06
        c.paint(c.band((side_x + 0.02 * np.sign(step), y + 0.03), (side_x + step, y + 0.05), max(2.5, c.w / 55)), 0.95)
    return c.finish(rng)


def _draw_chest_lateral(spec: StudySpec, rng: np.random.Generator) -> Image.Image:
    c = _Canvas(*spec.size, background=0.04)
    present = {f["finding"]: f["site"] for f in spec.present}
    c.paint(c.ellipse(0.5, 0.55, 0.46, 0.55), 0.42)
    lung = c.ellipse(0.52, 0.45, 0.33, 0.34)
    c.paint(lung, 0.16)
    heart = (0.22, 0.2) if "cardiomegaly" in present else (0.15, 0.14)
    c.paint(c.ellipse(0.36, 0.62, *heart), 0.58)
    broken = int(rng.integers(4, 8)) if "fracture" in present else -1
    for i in range(11):
        y0 = 0.1 + 0.075 * i
        if i == broken:
            # Wedge compression: the anterior height collapses, with a dark fracture line.
            c.paint(
                c.strokes(
                    lambda d, w, h, y0=y0: d.polygon(
                        [
                            (0.72 * w, (y0 + 0.03) * h),
                            (0.86 * w, y0 * h),
                            (0.86 * w, (y0 + 0.06) * h),
                            (0.72 * w, (y0 + 0.06) * h),
                        ],
                        fill=255,
                    )
                ),
                0.92,
            )
            c.paint(c.band((0.72, y0 + 0.045), (0.86, y0 + 0.03), max(1.5, c.w / 70)), 0.05)
        else:
            c.paint(c.box(0.72, y0, 0.86, y0 + 0.06), 0.8)
    if "pleural effusion" in present:
        top = 0.66 if spec.severity.get("pleural effusion") == "small" else 0.58
        c.paint(lung & (c.y / c.h > top - 0.4 * np.clip(c.x / c.w - 0.5, 0, None)) & (c.x / c.w > 0.45), 0.58)
    return c.finish(rng)


def _draw_chest_ct(spec: StudySpec, rng: np.random.Generator) -> Image.Image:
    c = _Canvas(*spec.size, background=0.0)
    present = {f["finding"]: f["site"] for f in spec.present}
    c.paint(c.ellipse(0.5, 0.5, 0.46, 0.4), 0.3)
    c.paint(c.ellipse(0.5, 0.5, 0.42, 0.36), 0.45)
    lungs = {"right": (0.3, 0.47), "left": (0.7, 0.47)}
    masks = {side: c.ellipse(x, y, 0.15, 0.27) for side, (x, y) in lungs.items()}
    for side, mask in masks.items():
        c.paint(mask, 0.12)
        for _ in range(14):
            x, y = lungs[side]
            vx, vy = x + rng.uniform(-0.1, 0.1), y + rng.uniform(-0.2, 0.2)
            c.paint(c.ellipse(vx, vy, 0.008, 0.008 * c.w / c.h) & mask, 0.4)
    c.paint(c.ellipse(0.5, 0.42, 0.11, 0.15), 0.55)
    c.paint(c.ellipse(0.56, 0.62, 0.04, 0.04 * c.w / c.h), 0.6)
    c.paint(c.ellipse(0.5, 0.8, 0.06, 0.06 * c.w / c.h), 0.95)
    c.paint(c.ellipse(0.5, 0.8, 0.02, 0.02 * c.w / c.h), 0.35)

    def where(site):
        side = "left" if site.startswith("left") else "right"
        x, y = lungs[side]
        return side, x + rng.uniform(-0.05, 0.05), y + rng.uniform(-0.12, 0.06)

    if "consolidation" in present:
        side, x, y = where(present["consolidation"])
        region = c.ellipse(x, y, 0.12, 0.16) & masks[side]
        c.blob(rng, region, 0.68, density=0.75)
        for _ in range(3):
            ang = rng.uniform(0, np.pi)
            c.paint(c.band((x, y), (x + 0.06 * np.cos(ang), y + 0.08 * np.sin(ang)), 1.2) & region, 0.1)
    if "nodule" in present:
        side, x, y = where(present["nodule"])
        _lesion(c, rng, x, y, c.w * (0.04 if spec.severity.get("nodule") == "small" else 0.055), 0.85)
    if "mass" in present:
        side, x, y = where(present["mass"])
        _lesion(c, rng, x, y, c.w * 0.1, 0.8, lobes=3)
    if "pleural effusion" in present:
        side = present["pleural effusion"]
        x, y = lungs[side]
        depth = 0.12 if spec.severity.get("pleural effusion") == "small" else 0.05
        c.paint(masks[side] & (c.y / c.h > y + depth), 0.38)
    if "pneumothorax" in present:
        side = present["pneumothorax"]
        x, y = lungs[side]
        depth = 0.1 if spec.severity.get("pneumothorax") == "moderate" else 0.15
        air = masks[side] & (c.y / c.h < y - depth)
        c.paint(air, 0.0)
        c.paint(masks[side] & (np.abs(c.y / c.h - (y - depth)) < 0.006), 0.45)
    return c.finish(rng, noise=0.02)


_LOBES = {
    "right frontal lobe": (0.36, 0.3),
    "left frontal lobe": (0.64, 0.3),
    "right occipital lobe": (0.37, 0.7),
    "left occipital lobe": (0.63, 0.7),
}


def _draw_head_ct(spec: StudySpec, rng: np.random.Generator) -> Image.Image:
    c = _Canvas(*spec.size, background=0.0)
    present = {f["finding"]: f["site"] for f in spec.present}
    c.paint(c.ellipse(0.5, 0.5, 0.44, 0.46), 0.35)
    skull = c.ellipse(0.5, 0.5, 0.42, 0.44)
    c.paint(skull, 0.95)
    brain = c.ellipse(0.5, 0.5, 0.37, 0.4)
    c.paint(brain, 0.45)
    c.paint(c.band((0.5, 0.12), (0.5, 0.88), 1.0) & brain, 0.65)
    for x in (0.45, 0.55):
        c.paint(c.ellipse(x, 0.47, 0.035, 0.12), 0.15)
    if "mass" in present:
        x, y = _LOBES[present["mass"]]
        x, y = x + rng.uniform(-0.03, 0.03), y + rng.uniform(-0.03, 0.03)
        c.paint(c.ellipse(x, y, 0.16, 0.16 * c.w / c.h) & brain, 0.25)
        _lesion(c, rng, x, y, c.w * 0.095, 0.8, lobes=2)
    if "fracture" in present:
        x = 0.1 if present["fracture"].startswith("right") else 0.9
        y = 0.45 + rng.uniform(-0.05, 0.05)
        c.paint(c.ellipse(x, y, 0.07, 0.1) & ~skull, 0.42)
        c.paint(c.band((x - 0.06, y - 0.03), (x + 0.06, y + 0.03), max(2.5, c.w / 60)) & skull & ~brain, 0.0)
    return c.finish(rng, noise=0.02)


def _draw_abdomen_ct(spec: StudySpec, rng: np.random.Generator) -> Image.Image:
    c = _Canvas(*spec.size, background=0.0)
    present = {f["finding"]: f["site"] for f in spec.present}
    c.paint(c.ellipse(0.5, 0.5, 0.47, 0.44), 0.3)
    c.paint(c.ellipse(0.5, 0.5, 0.43, 0.4), 0.42)
    organs = {
        "liver": (0.3, 0.42, 0.19, 0.23),
        "spleen": (0.76, 0.42, 0.08, 0.14),
        "right kidney": (0.35, 0.66, 0.06, 0.09),
        "left kidney": (0.65, 0.66, 0.06, 0.09),
    }
    values = {"liver": 0.58, "spleen": 0.55, "right kidney": 0.66, "left kidney": 0.66}
    for name, geom in organs.items():
        c.paint(c.ellipse(*geom), values[name])
    for _ in range(6):
        bx, by = rng.uniform(0.42, 0.62), rng.uniform(0.25, 0.5)
        c.paint(c.ellipse(bx, by, 0.035, 0.04), 0.48)
        c.paint(c.ellipse(bx, by - 0.01, 0.015, 0.015), 0.03)
    c.paint(c.ellipse(0.53, 0.6, 0.03, 0.035), 0.62)
    vertebra = c.ellipse(0.5, 0.75, 0.07, 0.08)
    c.paint(vertebra, 0.9)
    if "mass" in present:
        x, y, rx, _ = organs[present["mass"]]
        r = min(rx * 0.8, 0.1)
        _lesion(c, rng, x + rng.uniform(-rx, rx) * 0.2, y + rng.uniform(-0.02, 0.02), c.w * r, 0.12, lobes=2)
    if "fracture" in present:
        c.paint(c.band((0.43, 0.72), (0.57, 0.78), max(2.5, c.w / 55)) & vertebra, 0.05)
    return c.finish(rng, noise=0.02)


def _draw_brain_mr(spec: StudySpec, rng: np.random.Generator) -> Image.Image:
    c = _Canvas(*spec.size, background=0.0)
    present = {f["finding"]: f["site"] for f in spec.present}
    c.paint(c.ellipse(0.5, 0.5, 0.44, 0.46), 0.7)
    c.paint(c.ellipse(0.5, 0.5, 0.41, 0.43), 0.08)
    brain = c.ellipse(0.5, 0.5, 0.38, 0.41)
    c.paint(brain, 0.5)
    c.paint(c.ellipse(0.5, 0.5, 0.3, 0.33), 0.36)
    for x in (0.45, 0.55):
        c.paint(c.ellipse(x, 0.47, 0.035, 0.12), 0.92)
    if "mass" in present:
        x, y = _LOBES[present["mass"]]
        x, y = x + rng.uniform(-0.03, 0.03), y + rng.uniform(-0.03, 0.03)
        c.paint(c.ellipse(x, y, 0.17, 0.17 * c.w / c.h) & brain, 0.85)
        _lesion(c, rng, x, y, c.w * 0.105, 0.12)
        _lesion(c, rng, x, y, c.w * 0.08, 0.6, lobes=2)
    return c.finish(rng, noise=0.02)


def _draw_knee_xr(spec: StudySpec, rng: np.random.Generator) -> Image.Image:
    c = _Canvas(*spec.size, background=0.04)
    present = {f["finding"]: f["site"] for f in spec.present}
    c.paint(c.box(0.12, 0.0, 0.88, 1.0) & c.ellipse(0.5, 0.5, 0.42, 0.9), 0.3)
    femur = c.box(0.37, 0.0, 0.63, 0.42) | c.ellipse(0.5, 0.44, 0.22, 0.07)
    tibia = c.box(0.3, 0.53, 0.7, 0.6) | c.box(0.39, 0.58, 0.61, 1.0)
    fibula = c.box(0.72, 0.57, 0.78, 1.0)
    bones = {"distal femur": (femur, 0.3), "proximal tibia": (tibia, 0.66), "proximal fibula": (fibula, 0.66)}
    for mask, _ in bones.values():
        c.paint(mask, 0.82)
    c.paint(c.ellipse(0.5, 0.4, 0.08, 0.05), 0.92)
    if "fracture" in present:
        mask, y = bones[present["fracture"]]
        x0, x1 = (0.68, 0.82) if "fibula" in present["fracture"] else (0.26, 0.74)
        c.paint(c.band((x0, y - 0.04), (x1, y + 0.04), max(3.0, c.w / 40)) & mask, 0.08)
    return c.finish(rng)


_METACARPALS = {
    "second metacarpal": 0.36,
    "third metacarpal": 0.47,
    "fourth metacarpal": 0.58,
    "fifth metacarpal": 0.69,
}


def _draw_hand_xr(spec: StudySpec, rng: np.random.Generator) -> Image.Image:
    c = _Canvas(*spec.size, background=0.04)
    present = {f["finding"]: f["site"] for f in spec.present}
    c.paint(c.ellipse(0.52, 0.62, 0.3, 0.2), 0.3)
    c.paint(c.box(0.4, 0.78, 0.66, 1.0), 0.3)
    bones: dict = {}
    for name, x in _METACARPALS.items():
        c.paint(c.box(x - 0.05, 0.05, x + 0.05, 0.5), 0.3)
        bones[name] = c.box(x - 0.03, 0.45, x + 0.03, 0.72)
        for y0, y1 in ((0.1, 0.2), (0.22, 0.31), (0.33, 0.43)):
            c.paint(c.box(x - 0.022, y0, x + 0.022, y1), 0.75)
    c.paint(c.band((0.25, 0.62), (0.12, 0.35), 0.05 * c.w), 0.3)
    c.paint(c.band((0.24, 0.62), (0.14, 0.38), 0.02 * c.w), 0.75)
    bones["distal radius"] = c.box(0.42, 0.82, 0.54, 1.0)
    c.paint(c.box(0.56, 0.82, 0.63, 1.0), 0.75)
    c.paint(c.box(0.36, 0.73, 0.66, 0.8), 0.7)
    for mask in bones.values():
        c.paint(mask, 0.82)
    if "fracture" in present:
        site = present["fracture"]
        if site == "distal radius":
            c.paint(c.band((0.38, 0.85), (0.58, 0.91), max(3.0, c.w / 45)) & bones[site], 0.08)
        else:
            x = _METACARPALS[site]
            c.paint(c.band((x - 0.05, 0.55), (x + 0.05, 0.63), max(3.0, c.w / 45)) & bones[site], 0.08)
    return c.finish(rng)


_RENDERERS = {
    "chest_xr_pa": _draw_chest_pa,
    "chest_xr_lateral": _draw_chest_lateral,
    "chest_ct": _draw_chest_ct,
    "head_ct": _draw_head_ct,
    "abdomen_ct": _draw_abdomen_ct,
    "brain_mr": _draw_brain_mr,
    "knee_xr": _draw_knee_xr,
    "hand_xr": _draw_hand_xr,
}


def render_study(spec: StudySpec) -> Image.Image:
    """Draw a spec's image (mode "L"); every present finding is drawn at its reported site.

    Args:
        spec (`StudySpec`): From `sample_spec`.
    """
    rng = np.random.default_rng([spec.seed, 0xD4A3])
    return _vary(_RENDERERS[spec.study_type](spec, rng), np.random.default_rng([spec.seed, 0xAFF1]))


def _vary(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Per-study positioning and exposure, so that distinct studies are not perceptual-hash near-duplicates.

    A small rotation/scale/shift (the patient is never placed the same way twice: sides stay on their half),
    then a gamma and a linear exposure gradient (like the X-ray heel effect or an MR coil's falloff). Kept small
    (3 degrees, 5%, 3% of the side; gamma 0.9-1.1, a 5-15% gradient): a finding's place is then within about one
    14-px patch of its site and its contrast nearly what `render_study` drew.
    """
    width, height = image.size
    angle = np.deg2rad(rng.uniform(-3, 3))
    scale = rng.uniform(0.95, 1.05)
    shift_x, shift_y = rng.uniform(-0.03, 0.03) * width, rng.uniform(-0.03, 0.03) * height
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    cx, cy = width / 2, height / 2
    # PIL's AFFINE maps output to input coordinates: rotate/scale about the centre, then shift.
    coeffs = (
        cos,
        -sin,
        cx - cos * (cx + shift_x) + sin * (cy + shift_y),
        sin,
        cos,
        cy - sin * (cx + shift_x) - cos * (cy + shift_y),
    )
    background = int(np.median(np.asarray(image)[:4, :4]))
    moved = image.transform(image.size, Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=background)
    arr = np.asarray(moved, dtype=np.float32) / 255.0
    arr = arr ** rng.uniform(0.9, 1.1)
    direction = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = ((xx / width - 0.5) * np.cos(direction) + (yy / height - 0.5) * np.sin(direction)) * rng.uniform(0.05, 0.15)
    arr = arr * (1.0 + ramp)
    return Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


def generate_study(seed: int, study_type: str | None = None) -> PhantomStudy:
    """Sample and draw one phantom study.

    Args:
        seed (`int`): The study's seed; the same seed always gives the same pixels and text.
        study_type (`str`, *optional*): Force a key of `STUDY_TYPES`.
    """
    spec = sample_spec(seed, study_type)
    return PhantomStudy(spec=spec, image=render_study(spec))


def generate_studies(num_studies: int, seed: int = 0, study_type: str | None = None) -> list[PhantomStudy]:
    """`num_studies` phantoms; study `i` uses seed `seed * 1_000_003 + i`, so a prefix is stable across sizes.

    Args:
        num_studies (`int`): How many.
        seed (`int`, *optional*, defaults to 0): Base seed.
        study_type (`str`, *optional*): Force one study type for all.
    """
    return [generate_study(seed * 1_000_003 + i, study_type) for i in range(num_studies)]
