"""Data: read chest X-ray collections as users download them (IU X-Ray, MIMIC-CXR-JPG, CheXpert,
a manifest CSV), clean, label, split, cache (one array or tar shards), stream."""

from chestclip.data.dataset import PreparedData, XrayReportDataset
from chestclip.data.prepare import PrepareSummary, prepare_dataset
from chestclip.data.sources import SourceError, detect_layout, read_source
from chestclip.data.split import split_by_patient
from chestclip.data.text import build_text, clean_text

__all__ = [
    "PrepareSummary",
    "PreparedData",
    "SourceError",
    "XrayReportDataset",
    "build_text",
    "clean_text",
    "detect_layout",
    "prepare_dataset",
    "read_source",
    "split_by_patient",
]
