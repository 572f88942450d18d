"""Multi-label head training through the shared classifier module: masked targets, best epoch
by validation macro ROC-AUC."""

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from chestclip.models.heads import MultiLabelHead
from chestclip.training.classifier_module import MultiLabelModule, fit_keep_best, macro_auc


def test_macro_auc_skips_findings_without_both_classes():
    scores = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0.8, 0.3, 0.4], [0.2, 0.1, 0.3]])
    targets = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])
    mask = np.ones_like(targets, dtype=bool)
    # finding 0 ranks perfectly (1.0); finding 1: positives 0.2, 0.1 vs negatives 0.8, 0.3 → 0.0;
    # finding 2 holds negatives only and is left out
    assert macro_auc(scores, targets, mask) == 0.5
    mask[1, 1] = mask[2, 1] = False  # now finding 1 compares 0.2, 0.1 with nothing: left out
    assert macro_auc(scores, targets, mask) == 1.0


def _synthetic(n: int, seed: int):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 6)).astype(np.float32)
    targets = np.stack([features[:, 0] > 0, features[:, 1] > 0.5], axis=1).astype(np.float32)
    mask = rng.random((n, 2)) > 0.3  # 30 % of labels ignored
    return TensorDataset(*(torch.from_numpy(a) for a in (features, targets, mask)))


def test_training_learns_each_finding_from_masked_labels(tmp_path):
    head = MultiLabelHead(6, ["a", "b"], hidden_sizes=(16,))
    module = MultiLabelModule(head, "adamw", 1e-2, 0.0, pos_weight=torch.tensor([1.0, 2.0]))
    train = DataLoader(_synthetic(400, 0), batch_size=32, shuffle=True)
    val = DataLoader(_synthetic(200, 1), batch_size=64)
    epoch, val_auc = fit_keep_best(
        module, train, val, tmp_path, max_epochs=8, accelerator="cpu",
        enable_progress_bar=False, enable_checkpointing=True,
    )  # fmt: skip
    assert val_auc > 0.95 and 0 <= epoch < 8
