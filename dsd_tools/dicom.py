"""Write a 3D volume as a real CT DICOM series, so DICOM inputs can be tested without patient data.

The volume is indexed like a NIfTI array, ``volume[i, j, k]``, and ``affine`` is the NIfTI-style (RAS, mm)
voxel-to-world matrix. DICOM stores patient coordinates in LPS, so the writer flips x and y once
(``LPS = diag(-1, -1, 1) @ RAS``) and then maps: i -> the column index along a row (ImageOrientationPatient's
first triplet), j -> the row index (its second triplet), k -> the slice (InstanceNumber k + 1 and
ImagePositionPatient of voxel (0, 0, k)). This is the inverse of what MONAI's PydicomReader (``swap_ij=True``)
and ITKReader (``reverse_indexing=False``) do, so both read back ``volume`` with ``affine`` (in RAS, MONAI's
default ``affine_lps_to_ras=True``) -- with one exception documented at ``write_dicom_series``.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np

__all__ = ["write_dicom_series", "readback_affine", "CT_IMAGE_STORAGE"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _check_geometry(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spacings and unit directions of the three voxel axes; DICOM CT has no shear, so they must be orthogonal."""
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}")
    cols = affine[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"affine has a zero-length voxel axis: spacings {spacing}")
    dirs = cols / spacing
    gram = dirs.T @ dirs
    if not np.allclose(gram, np.eye(3), atol=1e-4):
        raise ValueError("affine axes are not orthogonal (sheared/tilted): a plain CT series cannot store it")
    return spacing, dirs


def readback_affine(affine: np.ndarray, depth: int, reader: str = "pydicom") -> tuple[np.ndarray, bool]:
    """The RAS affine MONAI reports for a series written with ``affine``, and whether k comes back reversed.

    Why: PydicomReader orders slices by InstanceNumber, so it always returns ``affine``. ITKReader (GDCM) orders
    them by position along row x column; when the slice axis points the other way (``det(affine) < 0``, e.g. a
    LAS NIfTI) ITK returns the same geometry with k reversed: ``volume[..., ::-1]`` and ``affine @ flip_k``.

    Raises:
        ValueError: ``affine`` is not a finite, orthogonal 4x4 matrix.
    """
    affine = np.asarray(affine, dtype=float)
    _check_geometry(affine)
    if reader == "pydicom" or np.linalg.det(affine[:3, :3]) > 0:
        return affine.copy(), False
    flip_k = np.eye(4)
    flip_k[2, 2], flip_k[2, 3] = -1.0, depth - 1
    return affine @ flip_k, True


def _uid() -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid())


def _ds_decimal(x: float) -> str:
    """DICOM DS values are at most 16 characters."""
    s = f"{x:.10g}"
    return s if len(s) <= 16 else f"{x:.6e}"


def write_dicom_series(volume: np.ndarray, affine: np.ndarray, out_dir: str | os.PathLike,
                       rescale_slope: float | None = None, rescale_intercept: float | None = None,
                       patient_id: str = "ANON0001", series_description: str = "synthetic CT") -> list[str]:
    """Write ``volume`` (i, j, k) as one CT Image Storage file per slice in ``out_dir``; return the file paths.

    Pixel data are unsigned 16-bit; ``stored = round((value - intercept) / slope)``. By default the intercept is
    ``floor(min)`` (0 if the volume is non-negative) and the slope 1 when the volume is integer-valued and fits,
    so values read back exactly; otherwise the slope spreads the range over 0..65535 (quantised read-back).

    Read-back (MONAI, RAS): PydicomReader gives ``volume`` and ``affine`` exactly. ITKReader gives the same when
    ``det(affine) > 0``; when it is negative, ITK sorts slices along row x column and returns ``volume[..., ::-1]``
    with ``affine @ flip_k`` -- same world geometry, different index order (see ``readback_affine``).

    Raises:
        ValueError: volume not 3D / not finite, affine not 4x4 / sheared, or values that do not fit 16 bits.
        ImportError: pydicom is not installed.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (i, j, k), got shape {volume.shape}")
    if not np.all(np.isfinite(volume)):
        raise ValueError("volume has NaN/Inf voxels: DICOM pixel data cannot store them")
    spacing, dirs = _check_geometry(affine)
    a_lps = _LPS @ np.asarray(affine, dtype=float)
    row_dir = _LPS[:3, :3] @ dirs[:, 0]   # direction of increasing column index (i)
    col_dir = _LPS[:3, :3] @ dirs[:, 1]   # direction of increasing row index (j)

    vmin, vmax = float(volume.min()), float(volume.max())
    intercept = float(np.floor(min(vmin, 0.0))) if rescale_intercept is None else float(rescale_intercept)
    if rescale_slope is None:
        integral = np.all(np.equal(np.mod(volume, 1), 0))
        slope = 1.0 if integral and vmax - intercept <= 65535 else max((vmax - intercept) / 65535.0, 1e-12)
    else:
        slope = float(rescale_slope)
    stored = np.round((volume.astype(np.float64) - intercept) / slope)
    if stored.min() < 0 or stored.max() > 65535:
        raise ValueError(f"values {vmin}..{vmax} do not fit 16 bits with slope {slope} and intercept {intercept}")
    stored = stored.astype(np.uint16)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = _uid(), _uid(), _uid()
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    nx, ny, nz = volume.shape
    paths = []
    for k in range(nz):
        sop_uid = _uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        path = out / f"IM{k + 1:05d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Synthetic^Case", patient_id, "", "O"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName, ds.Manufacturer = "1", "", "", "dsd-bundles"
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 1, k + 1, series_description
        ds.PositionReferenceIndicator = ""
        ipp = a_lps[:3, :3] @ np.array([0.0, 0.0, k]) + a_lps[:3, 3]
        ds.ImagePositionPatient = [_ds_decimal(v) for v in ipp]
        ds.ImageOrientationPatient = [_ds_decimal(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [_ds_decimal(spacing[1]), _ds_decimal(spacing[0])]  # [between rows, between columns]
        ds.SliceThickness = _ds_decimal(spacing[2])
        ds.SpacingBetweenSlices = _ds_decimal(spacing[2])
        ds.SliceLocation = _ds_decimal(float(np.dot(ipp, np.cross(row_dir, col_dir))))
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = _ds_decimal(slope), _ds_decimal(intercept), "HU"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()  # rows = j, columns = i
        ds.save_as(str(path), enforce_file_format=True)
        paths.append(str(path))
    return paths
