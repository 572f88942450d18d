import numpy as np
import pytest

from chestclip.evaluation.figures import (
    plot_confusion_matrices,
    plot_modality_bars,
    plot_reliability,
    plot_roc_curves,
)
from chestclip.evaluation.metrics import confusion, reliability_bins

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def heads(scored):
    return {
        name: (frame["label"].to_numpy(), frame["score"].to_numpy())
        for name, frame in (
            ("image", scored(100, seed=1, separation=0.8)),
            ("text", scored(100, seed=2, separation=1.5)),
            ("multimodal", scored(100, seed=3, separation=2.5)),
        )
    }


def _assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert not list(path.parent.glob(".*.tmp"))  # written atomically, no leftovers


def test_roc_curves(heads, tmp_path):
    plot_roc_curves(
        {**heads, "one class": (np.zeros(5), np.linspace(0, 1, 5))}, tmp_path / "roc.png"
    )
    _assert_png(tmp_path / "roc.png")


def test_confusion_matrices(heads, tmp_path):
    matrices = {name: confusion(labels, scores, 0.5) for name, (labels, scores) in heads.items()}
    plot_confusion_matrices(matrices, tmp_path / "confusion.png")
    _assert_png(tmp_path / "confusion.png")


def test_modality_bars(tmp_path):
    aucs = {
        "image": (0.71, 0.66, 0.76),
        "text": (0.59, 0.53, 0.65),
        "multimodal": (0.81, 0.77, 0.85),
        "bag of words": (0.96, None, None),
    }
    plot_modality_bars(aucs, tmp_path / "modality.png")
    _assert_png(tmp_path / "modality.png")


def test_reliability(heads, tmp_path):
    curves = {name: reliability_bins(labels, scores) for name, (labels, scores) in heads.items()}
    plot_reliability(curves, tmp_path / "reliability.png")
    _assert_png(tmp_path / "reliability.png")
