# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Upload safety: what an uploaded file is (by its content, never its name), size and pixel limits, and decoding
it to an RGB image. Nothing here returns or logs a DICOM file's tags."""

from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageDraw

from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import is_dicom


UPLOAD_KINDS = {"png": "PNG", "jpeg": "JPEG", "dicom": "DICOM"}


class Upload(NamedTuple):
    """A decoded upload.

    Args:
        image (`PIL.Image.Image`): RGB pixels.
        kind (`str`): `"png"`, `"jpeg"` or `"dicom"`, from the file's content.
        burned_in (`bool`): The DICOM declares text burned into its pixels (`BurnedInAnnotation == "YES"`).
    """

    image: Image.Image
    kind: str
    burned_in: bool = False


def sniff_upload(head: bytes) -> str | None:
    """`"png"`, `"jpeg"` or `"dicom"` from a file's first 132 bytes, `None` for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if is_dicom(head):
        return "dicom"
    return None


def read_upload(path: str | Path | None, *, max_bytes: int, max_pixels: int) -> Upload:
    """Validate and decode an uploaded PNG, JPEG or DICOM file into an RGB image.

    DICOM is windowed by `medvl_recipes.imaging.dicom_to_image`; of its tags only `BurnedInAnnotation` is read
    (whether the pixels carry text, such as a name, that the viewer should not see).

    Args:
        path (`str` or `Path`, *optional*): The uploaded file (`None` when nothing was uploaded).
        max_bytes (`int`): Largest accepted file size.
        max_pixels (`int`): Largest accepted width x height (checked before decoding).

    Returns:
        `Upload`: the RGB image, its kind (`"png"`, `"jpeg"` or `"dicom"`) and the burned-in annotation flag.

    Raises:
        `MedvlError`: with a message meant for the person who uploaded the file.
    """
    from medvl_recipes.imaging import load_image, read_dicom

    if path is None:
        raise MedvlError("Please upload a PNG, JPEG or DICOM image first.")
    try:
        size = Path(path).stat().st_size
    except FileNotFoundError:
        # Another session that uploaded the very same bytes (same cached file) had it deleted after reading it.
        raise MedvlError("The uploaded file is no longer on the server. Please upload it again.") from None
    if size == 0:
        raise MedvlError("The uploaded file is empty (0 bytes). Please upload a PNG, JPEG or DICOM image.")
    if size > max_bytes:
        raise MedvlError(f"The uploaded file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    data = Path(path).read_bytes()
    kind = sniff_upload(data[:132])
    if kind is None:
        raise MedvlError(
            "This file is not a PNG, JPEG or DICOM image (its content does not match any of these formats, "
            "whatever its name says). Please upload a PNG, JPEG or DICOM file."
        )
    try:
        # Bytes, not the path: error messages then never carry the uploaded file's name.
        image = load_image(data, max_pixels=max_pixels)
    except MedvlError as err:
        reason = str(err).removeprefix("<bytes>: ")
        if "max_pixels" in reason:
            reason = f"the image is too large (the limit is {max_pixels / 1e6:.0f} megapixels)"
        elif "no pixel data" in reason:
            reason = "this DICOM file contains no image (no pixel data), e.g. a structured report"
        raise MedvlError(f"Cannot read this {UPLOAD_KINDS[kind]} file: {reason}.") from None
    # Read after `load_image`, which refuses unsafe DICOM (deflated, too large) before pydicom parses it.
    burned_in = kind == "dicom" and str(read_dicom(data).get("BurnedInAnnotation", "")).upper() == "YES"
    return Upload(image, kind, burned_in)


def mask_bands(image: Image.Image, fraction: float) -> Image.Image:
    """A copy of `image` with its top and bottom `fraction` of rows blanked (black), where scanners burn in text.

    Args:
        image (`PIL.Image.Image`): The image.
        fraction (`float`): Height fraction of each band, between 0 and 0.5.
    """
    if not 0 <= fraction <= 0.5:
        raise MedvlError(f"mask fraction {fraction} must be between 0 and 0.5 (MEDVL_DEMO_MASK_FRACTION)")
    masked = image.convert("RGB")
    band = round(masked.height * fraction)
    if band:
        draw = ImageDraw.Draw(masked)
        draw.rectangle((0, 0, masked.width, band - 1), fill=(0, 0, 0))
        draw.rectangle((0, masked.height - band, masked.width, masked.height), fill=(0, 0, 0))
    return masked
