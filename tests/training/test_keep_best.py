"""``fit_keep_best`` keeps the epoch with the HIGHEST validation AUC of the curve Lightning
logged, for the normal/diseased classifier and the multi-label head alike, and the weights it
reloads score that AUC again."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, TensorDataset

from chestclip.models.heads import MLPHead, MultiLabelHead
from chestclip.training.classifier_module import (
    ClassifierModule,
    MultiLabelModule,
    fit_keep_best,
    macro_auc,
)

EPOCHS = 6


def _noisy(n: int, seed: int, findings: int | None) -> TensorDataset:
    """Labels from the first feature(s) plus heavy noise: the AUC moves from epoch to epoch."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    noise = rng.normal(scale=1.5, size=(n, findings or 1))
    if findings is None:
        labels = (x[:, 0] + noise[:, 0] > 0).astype(np.int64)
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(labels))
    targets = (x[:, :findings] + noise > 0).astype(np.float32)
    mask = np.ones_like(targets, dtype=bool)
    return TensorDataset(*(torch.from_numpy(a) for a in (x, targets, mask)))


def _scored_auc(module, loader: DataLoader, multilabel: bool) -> float:
    """The validation AUC of the module's current weights, computed here with scikit-learn."""
    module.eval()
    with torch.no_grad():
        logits = torch.cat([module.classifier(batch[0]) for batch in loader])
    if multilabel:
        _, targets, mask = loader.dataset.tensors
        return macro_auc(logits.sigmoid().numpy(), targets.numpy(), mask.numpy())
    return float(roc_auc_score(loader.dataset.tensors[1].numpy(), logits.softmax(-1)[:, 1]))


@pytest.mark.parametrize("multilabel", [False, True], ids=["classifier", "multilabel"])
def test_the_kept_epoch_is_the_arg_best_of_the_logged_validation_curve(
    validation_curves, tmp_path, multilabel
):
    torch.manual_seed(0)
    findings = 2 if multilabel else None
    if multilabel:
        module = MultiLabelModule(MultiLabelHead(8, ["a", "b"], (16,)), "adam", 3e-2, 0.0)
    else:
        module = ClassifierModule(MLPHead(8, (16,), 0.0), "adam", 3e-2, 0.0)
    train = DataLoader(_noisy(120, 0, findings), batch_size=16, shuffle=True)
    val = DataLoader(_noisy(80, 1, findings), batch_size=32)
    best_epoch, val_auc = fit_keep_best(
        module, train, val, tmp_path, max_epochs=EPOCHS, accelerator="cpu",
        enable_progress_bar=False,
    )  # fmt: skip
    (curve,) = validation_curves
    assert len(curve.aucs) == EPOCHS and max(curve.aucs) > min(curve.aucs)  # a curve to choose on
    assert best_epoch == int(np.argmax(curve.aucs))
    assert val_auc == pytest.approx(max(curve.aucs), abs=1e-6)
    # the weights left in the module are that epoch's: they score the recorded AUC again
    assert _scored_auc(module, val, multilabel) == pytest.approx(val_auc, abs=1e-6)
