"""Decompression bombs for tests and benchmarks of the input limits: small, valid files that
declare huge all-black images (a 13,000² 16-bit PNG is ~330 KB; a deflated DICOM of 20,000²
pixels ~780 KB). Written a row at a time: making one never holds the image either.

Hand-written (PNG chunks, DICOM elements) because every image writer first wants the pixels in
memory, which is what the limits exist to avoid.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    generate_uid,
)

_ROWS_PER_CHUNK = 256


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_bomb(path: str | Path, side: int) -> Path:
    """A valid 16-bit greyscale PNG of ``side``² black pixels."""
    deflater = zlib.compressobj(9)
    row = b"\0" * (1 + 2 * side)  # filter byte "none", then the pixels
    idat = bytearray()
    for start in range(0, side, _ROWS_PER_CHUNK):
        idat += deflater.compress(row * min(_ROWS_PER_CHUNK, side - start))
    idat += deflater.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)  # 16-bit grey, no interlace
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
    data += _png_chunk(b"IDAT", bytes(idat)) + _png_chunk(b"IEND", b"")
    Path(path).write_bytes(data)
    return Path(path)


def write_deflated_dicom_bomb(path: str | Path, side: int, declared: int | None = None) -> Path:
    """A DICOM of ``side``² black 16-bit pixels in the Deflated Explicit VR Little Endian
    transfer syntax (the whole dataset zlib-compressed); valid unless ``declared`` makes its
    Rows and Columns lie about the size."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dataset = Dataset()
    dataset.SOPClassUID, dataset.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    dataset.Modality, dataset.PatientID = "DX", "bomb"
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.Rows = dataset.Columns = declared or side
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation = 0
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, dataset)
    # the Pixel Data element (7FE0,0010), OW, written by hand: its value is streamed
    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, 2 * side * side)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressed = bytearray(deflater.compress(body.getvalue() + pixel_header))
    row = b"\0" * (2 * side)
    for start in range(0, side, _ROWS_PER_CHUNK):
        compressed += deflater.compress(row * min(_ROWS_PER_CHUNK, side - start))
    compressed += deflater.flush()
    head = DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, meta)
    Path(path).write_bytes(head.getvalue() + bytes(compressed))
    return Path(path)
