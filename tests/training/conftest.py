"""A recorder of the validation AUC curve of every ``fit_keep_best`` training, so tests can check
the kept epoch against the curve Lightning actually logged, not against what the code returned."""

from __future__ import annotations

import lightning as L
import pytest

import chestclip.training.classifier_module as classifier_module


class ValidationCurve(L.Callback):
    """``val/auc`` of every epoch, read once the module has logged it (after the sanity check)."""

    def __init__(self):
        self.aucs: list[float] = []

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.aucs.append(float(trainer.callback_metrics["val/auc"]))


@pytest.fixture
def validation_curves(monkeypatch) -> list[ValidationCurve]:
    """One ``ValidationCurve`` per trainer ``fit_keep_best`` builds, in the order built."""
    curves: list[ValidationCurve] = []
    build = classifier_module.build_trainer

    def recording(callbacks, **options):
        curves.append(ValidationCurve())
        return build(callbacks=[*callbacks, curves[-1]], **options)

    monkeypatch.setattr(classifier_module, "build_trainer", recording)
    return curves
