# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Image decoding shared by every stage: DICOM to display pixels, any PIL image to sane 8-bit RGB.

DICOM follows the standard display pipeline (PS3.3 C.11): stored values -> Modality LUT (rescale slope/intercept
or a Modality LUT Sequence) -> VOI LUT (window center/width or a VOI LUT Sequence) -> 8 bits, with MONOCHROME1
inverted so that air is black everywhere. pydicom does the LUT work; this module only picks the output range.
"""

import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

# Same order of magnitude as Pillow's own guard (~89.5 MP); a 5k x 5k mammogram is 25 MP.
DEFAULT_MAX_PIXELS = 90_000_000

# Patient-identifying attributes (DICOM PS3.15 Annex E basic profile, the ones found in practice).
# Captions never read them; `strip_phi` removes them before a file is shown or shipped.
PHI_TAGS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientComments",
    "MedicalRecordLocator",
    "MilitaryRank",
    "ReferringPhysicianName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "OperatorsName",
    "RequestingPhysician",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyTime",
    "SeriesTime",
    "AcquisitionTime",
    "ContentTime",
)

_MODALITY_NAMES = {
    "CR": "Radiograph",
    "DX": "Radiograph",
    "RG": "Radiograph",
    "MG": "Mammogram",
    "CT": "CT image",
    "MR": "MR image",
    "US": "Ultrasound image",
    "NM": "Nuclear medicine image",
    "PT": "PET image",
    "XA": "Angiogram",
    "RF": "Fluoroscopy image",
    "OT": "Medical image",
    "SC": "Medical image",
}


def _name_of(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    filename = getattr(source, "filename", None)
    return str(filename) if isinstance(filename, (str, os.PathLike)) else "<in-memory DICOM>"


def read_dicom(path_or_bytes):
    """Read a DICOM file (path, bytes or file object) with pydicom, raising `MedvlError` when it is not DICOM.

    Args:
        path_or_bytes (`str`, `os.PathLike`, `bytes` or a binary file object): The file.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    name = str(path_or_bytes) if isinstance(path_or_bytes, (str, os.PathLike)) else "<bytes>"
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    try:
        return pydicom.dcmread(source)
    except InvalidDicomError as err:
        raise MedvlError(f"{name}: not a DICOM file ({err}). Pass a DICOM Part 10 file.") from err
    except (OSError, EOFError, ValueError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise MedvlError(f"{name}: cannot read DICOM ({type(err).__name__}: {err}).") from err


def _refuse_deflated_dicom(data: bytes, name: str) -> None:
    """Refuse the Deflated transfer syntax before pydicom inflates the whole dataset in memory (a zip bomb)."""
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    fp = io.BytesIO(data)
    try:
        read_preamble(fp, force=False)
        syntax = _read_file_meta_info(fp).get("TransferSyntaxUID")
    except Exception:  # an unreadable meta group is reported by read_dicom
        return
    if syntax == DeflatedExplicitVRLittleEndian:
        raise MedvlError(
            f"{name}: deflated DICOM is not accepted here (it can inflate to many GB before any size check); "
            "re-save it with an uncompressed or image-compressed transfer syntax."
        )


def strip_phi(ds):
    """Return a copy of a pydicom Dataset without the `PHI_TAGS` and without private tags.

    Args:
        ds (`pydicom.Dataset`): The dataset (left untouched).
    """
    import copy

    clean = copy.deepcopy(ds)
    for keyword in PHI_TAGS:
        if keyword in clean:
            delattr(clean, keyword)
    clean.remove_private_tags()
    return clean


def _voi_output_range(ds) -> tuple[float, float]:
    """The range `apply_voi_lut` maps into (PS3.3 C.11.2.1.2 / C.11.1.1.1), used to scale its output to 8 bits."""
    # `apply_voi_lut` prefers a VOI LUT Sequence over a window when a file has both.
    if "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    if "ModalityLUTSequence" in ds:
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    if ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        low, high = sorted((low * slope + intercept, high * slope + intercept))
    return low, high


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if not np.isfinite(high - low) or high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _minmax_uint8(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    return _to_uint8(np.nan_to_num(values.astype(np.float64)), float(finite.min()), float(finite.max()))


def dicom_to_image(path_or_dataset) -> Image.Image:
    """Decode a DICOM image to display pixels.

    Grayscale goes through pydicom's `apply_modality_lut` then `apply_voi_lut` (first window / VOI LUT) and is
    scaled from the VOI output range to 8 bits; without any VOI data the modality values are min-max scaled.
    MONOCHROME1 is inverted. Multi-frame data gives its first frame. RGB/YBR data is returned as "RGB"
    (pydicom converts YBR), PALETTE COLOR through its LUT.

    Args:
        path_or_dataset (`str`, `os.PathLike`, `bytes` or `pydicom.Dataset`): The file or a read dataset.

    Returns:
        `PIL.Image.Image`: mode "L" (grayscale) or "RGB" (color), 8 bits per channel.

    Raises:
        `MedvlError`: naming the file when it is not DICOM, has no pixel data or cannot be decoded (e.g. a
        compressed transfer syntax without a decoder plugin installed).
    """
    from pydicom import Dataset
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    ds = path_or_dataset if isinstance(path_or_dataset, Dataset) else read_dicom(path_or_dataset)
    name = _name_of(path_or_dataset if not isinstance(path_or_dataset, Dataset) else ds)
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise MedvlError(f"{name}: DICOM file has no pixel data (e.g. a structured report); skip it.")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        if frames > 1:
            # Decode the first frame only: a multi-frame file can hold thousands of frames.
            ds.pixel_array_options(index=0)
        arr = ds.pixel_array
    except Exception as err:  # pydicom raises RuntimeError/NotImplementedError/ValueError/AttributeError here
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        syntax_name = getattr(syntax, "name", syntax) or "unknown transfer syntax"
        raise MedvlError(
            f"{name}: cannot decode DICOM pixel data ({syntax_name}): {str(err).splitlines()[0]}. "
            "Install a pydicom decoder plugin (pylibjpeg, gdcm) or convert the file to an uncompressed syntax."
        ) from err

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1))

    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        bits = 16 if rgb.dtype.itemsize > 1 else 8
        return Image.fromarray(_to_uint8(rgb, 0, 2**bits - 1), mode="RGB")
    if samples == 3 or arr.ndim == 3:
        # pydicom has already converted YBR_* to RGB; only the bit depth is left to reduce.
        bits = int(ds.get("BitsStored", 8))
        return Image.fromarray(_to_uint8(arr, 0, 2**bits - 1), mode="RGB")

    values = apply_modality_lut(arr, ds)
    has_voi = ("WindowCenter" in ds and "WindowWidth" in ds) or "VOILUTSequence" in ds
    if has_voi:
        values = apply_voi_lut(values, ds, index=0)
        pixels = _to_uint8(values, *_voi_output_range(ds))
    else:
        pixels = _minmax_uint8(values)
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels
    return Image.fromarray(pixels, mode="L")


def dicom_tags_caption(ds) -> str:
    """A short caption from non-identifying tags: Modality, BodyPartExamined, Study/SeriesDescription.

    Patient-identifying tags (`PHI_TAGS`) are never read.

    Args:
        ds (`pydicom.Dataset`): The dataset.

    Returns:
        `str`: e.g. `"CT of the chest. Thorax."`; `"Medical image."` when nothing useful is present.
    """
    modality = str(ds.get("Modality", "") or "").upper()
    head = _MODALITY_NAMES.get(modality, f"{modality} image" if modality else "Medical image")
    body_part = str(ds.get("BodyPartExamined", "") or "").strip().replace("_", " ").lower()
    parts = [f"{head} of the {body_part}" if body_part else head]
    seen = {parts[0].lower()}
    for keyword in ("StudyDescription", "SeriesDescription"):
        text = " ".join(str(ds.get(keyword, "") or "").replace("^", " ").split())
        if text and text.lower() not in seen and text.lower() != body_part:
            seen.add(text.lower())
            parts.append(text[:1].upper() + text[1:])
    return ". ".join(p.rstrip(".") for p in parts) + "."


def is_dicom(source: bytes | str | os.PathLike) -> bool:
    """Whether `source` (the file's bytes, or its path) is a DICOM Part 10 file.

    A file is DICOM when it carries the 128-byte preamble and `DICM` magic, whatever its name (CD exports have
    no extension: `DICOM/IM000001`), or is named `*.dcm`. `DICOMDIR` is a media directory, never an image.

    Args:
        source (`bytes`, `str` or `os.PathLike`): At least the first 132 bytes of a file, or a path.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[128:132]) == b"DICM"
    path = Path(source)
    if path.name.upper() == "DICOMDIR" or not path.is_file():
        return False
    if path.suffix.lower() == ".dcm":
        return True
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _pil_to_rgb(im: Image.Image) -> Image.Image:
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # High bit depth has no display window in a PNG/TIFF: stretch what is there to 8 bits.
        return Image.fromarray(_minmax_uint8(np.asarray(im)), mode="L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        # Transparent pixels become black background, like the film outside the collimated field.
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
    return im.convert("RGB")


def load_image(path_or_bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open any image PIL (or pydicom) reads and return a sane 8-bit RGB image.

    Handles every PIL mode (1, L, P, LA, RGBA composited on black, CMYK, I;16, I, F stretched to 8 bits),
    EXIF orientation, multi-frame files (first frame) and DICOM files (via `dicom_to_image`).

    Args:
        path_or_bytes (`str`, `os.PathLike`, `bytes` or a binary file object): The image.
        max_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_PIXELS`): Refuse images with more pixels than
            this before decoding them (decompression-bomb guard).

    Returns:
        `PIL.Image.Image`: mode "RGB", fully loaded.

    Raises:
        `MedvlError`: naming the file and the reason when it is empty, not an image, truncated/corrupt or too large.
    """
    if isinstance(path_or_bytes, (str, os.PathLike)):
        name = str(path_or_bytes)
        data = Path(path_or_bytes).read_bytes()
    elif isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        name, data = "<bytes>", bytes(path_or_bytes)
    else:
        name = str(getattr(path_or_bytes, "name", "<file object>"))
        data = path_or_bytes.read()
    if not data:
        raise MedvlError(f"{name}: empty file (0 bytes); re-download or remove it.")
    if is_dicom(data[:132]):
        _refuse_deflated_dicom(data, name)
        ds = read_dicom(data)
        rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
        if rows * cols > max_pixels:
            raise MedvlError(f"{name}: image has {rows * cols} pixels, more than max_pixels={max_pixels}.")
        ds.filename = name
        return dicom_to_image(ds).convert("RGB")
    try:
        with warnings.catch_warnings():
            # The explicit max_pixels check below replaces Pillow's warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > max_pixels:
                raise MedvlError(
                    f"{name}: image is {width}x{height} = {width * height} pixels, more than max_pixels={max_pixels} "
                    "(possible decompression bomb); raise max_pixels if the file is trusted."
                )
            im.seek(0)
            im.load()
    except MedvlError:
        raise
    except Image.DecompressionBombError as err:
        raise MedvlError(f"{name}: {err}") from err
    except UnidentifiedImageError as err:
        raise MedvlError(f"{name}: not an image file PIL can read ({len(data)} bytes); check the file type.") from err
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise MedvlError(f"{name}: corrupt or truncated image ({str(err).splitlines()[0]}).") from err
    try:
        return _pil_to_rgb(im)
    except (OSError, ValueError) as err:
        raise MedvlError(f"{name}: cannot convert image mode {im.mode!r} to RGB ({err}).") from err


def open_image(image: Any, root: Path | None, where: str) -> Image.Image:
    """Open a PIL image, bytes, a datasets `Image()` dict or a path (relative to `root`) as RGB; errors name `where`."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, dict) and (image.get("bytes") or image.get("path")):
        # A datasets `Image()` feature read with `decode=False`.
        image = image.get("bytes") or image["path"]
    if isinstance(image, (str, Path)):
        image = Path(image) if Path(image).is_absolute() or root is None else root / image
    elif not isinstance(image, (bytes, bytearray)):
        raise MedvlError(f"{where}: an image must be a PIL image, bytes or a path, got {type(image).__name__}")
    try:
        return load_image(image)
    except (MedvlError, OSError) as err:
        raise MedvlError(
            f"{where}: cannot read image: {err}; fix or remove the file, or rerun `medvl to-chat` to rewrite it"
        ) from err
