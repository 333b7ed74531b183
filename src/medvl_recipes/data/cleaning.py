# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Text normalisation and image validation for one record.

Both functions return what they produced plus a drop reason (or `None`) and the list of changes made, so that
prepare can count every dropped and every changed record by source and reason. Image decoding itself (any PIL
mode, DICOM windowing, decompression-bomb guard) lives in `medvl_recipes.imaging`, shared with the demo and eval.
"""

import io
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from medvl_recipes.data.mixture import CleaningConfig


# Drop reasons, documented in the dataset card and the report.
DROP_REASONS = {
    "no_image": "the source record has no image (e.g. an Open-I report without images)",
    "missing_image": "the referenced image file does not exist",
    "zero_byte_image": "the image file is empty",
    "not_an_image": "the file is not a decodable image",
    "truncated_image": "the image file is truncated",
    "corrupt_image": "the image failed to decode",
    "corrupt_dicom": "the DICOM file cannot be read",
    "decompression_bomb": "the image has more pixels than cleaning.max_pixels",
    "image_too_small": "the image's shorter side is below cleaning.min_side",
    "empty_text": "no text after cleaning",
    "junk_text": "the text is a placeholder (cleaning.junk_texts)",
    "text_too_short": "fewer words than cleaning.min_words",
    "text_too_long": "more words than cleaning.max_words",
    "duplicate_id": "the source yields the same id twice",
    "duplicate_pair": "same image pixels and same normalised text as an earlier record",
    "phi_suspected": "the text holds a date, a record number or a name from the file's tags (cleaning.phi_patterns)",
}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class CleanedText:
    text: str | None
    drop_reason: str | None = None
    changes: list[str] = field(default_factory=list)


def clean_text(text: str | None, config: CleaningConfig) -> CleanedText:
    """Normalise a caption/report: Unicode NFKC, whitespace, de-identification placeholders, length limits.

    Args:
        text (`str`):
            The raw text.
        config (`CleaningConfig`):
            Cleaning options.
    """
    raw = text or ""
    changes: list[str] = []
    cleaned = unicodedata.normalize("NFKC", raw)
    cleaned = " ".join(cleaned.split())
    if cleaned != raw:
        changes.append("text_whitespace_normalised")
    if config.deid_action != "keep" and config.deid_patterns:
        pattern = re.compile("|".join(f"(?:{p})" for p in config.deid_patterns))
        if pattern.search(cleaned):
            if config.deid_action == "mask":
                cleaned = pattern.sub(config.deid_mask, cleaned)
                changes.append("text_deid_masked")
            else:
                kept = [s for s in _SENTENCE_END.split(cleaned) if not pattern.search(s)]
                cleaned = " ".join(kept)
                changes.append("text_deid_sentence_dropped")
    if not cleaned:
        return CleanedText(None, "empty_text", changes)
    if config.phi_action == "drop" and any(re.search(p, cleaned) for p in config.phi_patterns):
        return CleanedText(None, "phi_suspected", changes)
    if cleaned.lower().strip(" .") in {j.lower().strip(" .") for j in config.junk_texts}:
        return CleanedText(None, "junk_text", changes)
    words = len(cleaned.split())
    if words < config.min_words:
        return CleanedText(None, "text_too_short", changes)
    if words > config.max_words:
        return CleanedText(None, "text_too_long", changes)
    return CleanedText(cleaned, None, changes)


@dataclass
class CleanedImage:
    image: Image.Image | None
    drop_reason: str | None = None
    changes: list[str] = field(default_factory=list)
    detail: str = ""


def _classify(err: BaseException) -> str:
    # `imaging.load_image` wraps PIL's errors in a MedvlError; the cause says what actually went wrong.
    if err.__cause__ is not None:
        err = err.__cause__
    message = str(err).lower()
    if isinstance(err, Image.DecompressionBombError) or "decompression bomb" in message or "max_pixels" in message:
        return "decompression_bomb"
    if isinstance(err, UnidentifiedImageError) or "cannot identify" in message:
        return "not_an_image"
    if "truncated" in message or "premature end" in message or isinstance(err, EOFError):
        return "truncated_image"
    return "corrupt_image"


def clean_image(image: Path | bytes | None, config: CleaningConfig) -> CleanedImage:
    """Decode and validate an image reference; return an RGB image downscaled to `max_side`.

    Args:
        image (`pathlib.Path`, `bytes` or `None`):
            File path (any PIL format or DICOM) or encoded bytes.
        config (`CleaningConfig`):
            Cleaning options (`min_side`, `max_side`, `max_pixels`).
    """
    from medvl_recipes import imaging

    if image is None:
        return CleanedImage(None, "no_image")
    path = Path(image) if not isinstance(image, bytes) else None
    if path is not None:
        if not path.is_file():
            return CleanedImage(None, "missing_image", detail=str(path))
        if path.stat().st_size == 0:
            return CleanedImage(None, "zero_byte_image", detail=str(path))
    elif len(image) == 0:
        return CleanedImage(None, "zero_byte_image")
    changes: list[str] = []
    try:
        with warnings.catch_warnings():
            # PIL only warns between max_pixels and 2x; we refuse from max_pixels on.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if imaging.is_dicom(image if path is None else path):
                try:
                    if path is None:
                        import pydicom

                        decoded = imaging.dicom_to_image(pydicom.dcmread(io.BytesIO(image)))
                    else:
                        decoded = imaging.dicom_to_image(path)
                except Exception as err:  # pydicom raises many types for broken files
                    return CleanedImage(None, "corrupt_dicom", detail=f"{type(err).__name__}: {err}")
                changes.append("image_dicom_windowed")
            else:
                with Image.open(path if path is not None else io.BytesIO(image)) as probe:
                    mode, (width, height) = probe.mode, probe.size
                if width * height > config.max_pixels:
                    return CleanedImage(None, "decompression_bomb", detail=f"{width}x{height}")
                decoded = imaging.load_image(path if path is not None else image, max_pixels=config.max_pixels)
                if mode != "RGB":
                    changes.append(f"image_mode_converted:{mode}")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        return CleanedImage(None, "decompression_bomb", detail=str(err))
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        return CleanedImage(None, _classify(err), detail=f"{type(err).__name__}: {err}")
    if decoded.mode != "RGB":
        decoded = decoded.convert("RGB")
    if min(decoded.size) < config.min_side:
        return CleanedImage(None, "image_too_small", detail=f"{decoded.size[0]}x{decoded.size[1]}")
    if config.max_side is not None and max(decoded.size) > config.max_side:
        scale = config.max_side / max(decoded.size)
        size = (max(1, round(decoded.size[0] * scale)), max(1, round(decoded.size[1] * scale)))
        decoded = decoded.resize(size, Image.Resampling.LANCZOS)
        changes.append("image_resized")
    return CleanedImage(decoded, None, changes)
