# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    SecondaryCaptureImageStorage,
)

from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import PHI_TAGS, dicom_tags_caption, dicom_to_image, load_image, strip_phi


def _dataset(stored: np.ndarray, **tags) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = "1.2.3.4"
    frames = stored.shape[0] if stored.ndim == 3 else 1
    ds.Rows, ds.Columns = stored.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = stored.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(stored.dtype.kind == "i")
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = stored.tobytes()
    return ds


def test_windowing_monochrome1_rescale_matches_hand_computed_values():
    # 12-bit stored in 16 bits; HU = 2 * stored - 1024; window C=40, W=400; MONOCHROME1.
    stored = np.array([[0, 400, 500, 512], [532, 600, 700, 4095]], dtype=np.uint16)
    ds = _dataset(
        stored,
        BitsStored=12,
        HighBit=11,
        PhotometricInterpretation="MONOCHROME1",
        RescaleSlope=2,
        RescaleIntercept=-1024,
        WindowCenter=40,
        WindowWidth=400,
    )
    # HU: -1024, -224, -24, 0, 40, 176, 376, 7166. PS3.3 C.11.2.1.2.1 linear window:
    # f = (x - (c - 0.5)) / (w - 1) + 0.5 clipped to [0, 1]; 8 bits = round(255 f); MONOCHROME1 -> 255 - v.
    # -24 -> f = 0.340852 -> 87 -> 168;  0 -> 0.401003 -> 102 -> 153;  40 -> 0.501253 -> 128 -> 127;
    # 176 -> 0.842105 -> 215 -> 40;  376 and 7166 -> 1 -> 0;  -1024 and -224 -> 0 -> 255.
    expected = np.array([[255, 255, 168, 153], [127, 40, 0, 0]], dtype=np.uint8)
    image = dicom_to_image(ds)
    assert image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), expected)


def test_no_window_falls_back_to_min_max_signed():
    stored = np.array([[-100, 0], [100, 300]], dtype=np.int16)
    image = dicom_to_image(_dataset(stored))
    # (x + 100) / 400 * 255 rounded half to even: 0, 63.75, 127.5, 255.
    np.testing.assert_array_equal(np.asarray(image), np.array([[0, 64], [128, 255]], dtype=np.uint8))


def test_multiframe_uses_first_frame():
    stored = np.stack([np.array([[0, 10], [20, 30]]), np.array([[30, 20], [10, 0]])]).astype(np.uint16)
    image = dicom_to_image(_dataset(stored))
    np.testing.assert_array_equal(np.asarray(image), np.array([[0, 85], [170, 255]], dtype=np.uint8))


def test_ybr_and_rgb_files_decode_to_the_same_rgb_picture():
    from pathlib import Path

    import data_store

    folder = Path(data_store.__file__).parent / "data"
    rgb = dicom_to_image(folder / "SC_rgb.dcm")
    ybr = dicom_to_image(folder / "SC_ybr_full_uncompressed.dcm")
    assert rgb.mode == ybr.mode == "RGB"
    diff = np.abs(np.asarray(rgb, dtype=int) - np.asarray(ybr, dtype=int))
    assert diff.mean() < 3, diff.mean()


def test_no_pixel_data_and_undecodable_pixels_raise_naming_the_file(tmp_path):
    ds = _dataset(np.zeros((2, 2), dtype=np.uint8))
    del ds.PixelData
    path = tmp_path / "report_only.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(MedvlError, match="report_only.dcm.*no pixel data"):
        dicom_to_image(path)

    ds = _dataset(np.zeros((2, 2), dtype=np.uint8))
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\x00\x01 this is not a JPEG 2000 codestream"])
    path = tmp_path / "compressed.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(MedvlError, match="compressed.dcm.*cannot decode"):
        dicom_to_image(path)

    not_dicom = tmp_path / "notes.dcm"
    not_dicom.write_text("hello")
    with pytest.raises(MedvlError, match="notes.dcm"):
        dicom_to_image(not_dicom)


def test_caption_uses_no_patient_tags_and_strip_phi_removes_them():
    ds = _dataset(np.zeros((2, 2), dtype=np.uint8), Modality="CT", BodyPartExamined="CHEST")
    ds.StudyDescription = "Chest w/o contrast"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "12345"
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = "General Hospital"
    ds.add_new(0x00091001, "LO", "private")
    caption = dicom_tags_caption(ds)
    assert caption == "CT image of the chest. Chest w/o contrast."
    for secret in ("Doe", "Jane", "12345", "1970", "General"):
        assert secret not in caption
    clean = strip_phi(ds)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName"):
        assert keyword in PHI_TAGS
        assert keyword not in clean
        assert keyword in ds  # the input is left untouched
    assert 0x00091001 not in clean
    assert clean.Modality == "CT"


def _save(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_load_image_16bit_is_stretched_to_8bit():
    arr = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    image = load_image(_save(Image.fromarray(arr, mode="I;16")))
    assert image.mode == "RGB"
    # (x - 0) / 4000 * 255: 0, 63.75, 127.5, 255.
    np.testing.assert_array_equal(np.asarray(image)[..., 0], np.array([[0, 64], [128, 255]], dtype=np.uint8))


def test_load_image_rgba_is_composited_on_black():
    rgba = np.array([[[255, 0, 0, 0], [255, 0, 0, 128]], [[0, 255, 0, 255], [10, 20, 30, 255]]], dtype=np.uint8)
    image = load_image(_save(Image.fromarray(rgba, mode="RGBA")))
    expected = np.array([[[0, 0, 0], [128, 0, 0]], [[0, 255, 0], [10, 20, 30]]], dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(image, dtype=int), expected, atol=1)


@pytest.mark.parametrize("mode", ["P", "CMYK", "LA", "1", "F", "I", "L"])
def test_load_image_other_modes_give_rgb(mode, tmp_path):
    base = Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1)), mode="L").convert("RGB")
    image = base.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "F", "I") else "PNG"
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(_save(image, fmt))
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == base.size
    gray = np.asarray(loaded.convert("L"), dtype=int)
    # Left to right the ramp stays increasing (P quantises, "1" dithers: compare row means loosely).
    assert gray[:, -1].mean() > gray[:, 0].mean()


def test_load_image_transparent_palette_composites_on_black():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 255, 255, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    data = _save(image, transparency=0)
    np.testing.assert_array_equal(np.asarray(load_image(data)), np.array([[[0, 0, 0], [0, 0, 255]]], dtype=np.uint8))


def test_load_image_bad_files_raise_with_name_and_reason(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(MedvlError, match="empty.png.*empty file"):
        load_image(empty)

    text = tmp_path / "notes.png"
    text.write_text("this is a text file renamed to .png\n")
    with pytest.raises(MedvlError, match="notes.png.*not an image"):
        load_image(text)

    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    full = _save(Image.fromarray(noise), "PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.raises(MedvlError, match="truncated.png.*(truncated|corrupt)"):
        load_image(truncated)

    big = tmp_path / "big.png"
    big.write_bytes(_save(Image.new("L", (100, 50))))
    with pytest.raises(MedvlError, match="big.png.*5000 pixels.*max_pixels=4999"):
        load_image(big, max_pixels=4999)
    assert load_image(big, max_pixels=5000).size == (100, 50)


def test_load_image_reads_dicom_bytes():
    stored = np.array([[0, 100], [200, 300]], dtype=np.uint16)
    buffer = io.BytesIO()
    _dataset(stored).save_as(buffer, enforce_file_format=True)
    image = load_image(buffer.getvalue())
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image)[..., 0], np.array([[0, 85], [170, 255]], dtype=np.uint8))


def test_real_dicom_files_decode_with_correct_polarity():
    from pydicom.data import get_testdata_file

    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    image = np.asarray(dicom_to_image(ct), dtype=float)
    hu = pydicom.pixels.apply_modality_lut(ct.pixel_array, ct)
    # No window in the file: min-max, so the 8-bit image is an increasing function of HU.
    assert np.corrcoef(image.ravel(), hu.ravel())[0, 1] > 0.999


def test_multi_frame_dicom_decodes_only_its_first_frame():
    path = get_testdata_file("emri_small.dcm")  # 10 frames
    single = pydicom.dcmread(path)
    first = single.pixel_array[0]
    single.PixelData, single.NumberOfFrames = first.tobytes(), 1
    # The same image as the first frame of a full decode, rendered on its own.
    assert np.array_equal(np.asarray(dicom_to_image(path)), np.asarray(dicom_to_image(single)))


def test_deflated_dicom_upload_is_refused_before_inflating():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(MedvlError, match="deflated DICOM is not accepted"):
        load_image(buffer.getvalue())
