"""``chestclip baseline image``: the paper's single-modal baseline — the CLIP image encoder's
initial weights (same name or preset, same seed) fine-tuned end to end as a normal/diseased
classifier. Its validation/test probabilities join ``chestclip evaluate`` as a head.

Writes ``RUN/baselines/image-finetuned/``: ``model.safetensors``, ``info.json``, ``scores.csv``;
:func:`load_image_baseline` rebuilds the classifier from them offline (``chestclip explain --head
image-finetuned`` explains it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader

from chestclip.config import RunConfig
from chestclip.data import PreparedData, XrayReportDataset
from chestclip.errors import ChestClipError
from chestclip.models import (
    ImageEncoder,
    build_image_encoder,
    pretrained_image_encoder,
    rebuild_image_encoder,
)
from chestclip.models.io import load_weights
from chestclip.training.augment import make_augment
from chestclip.training.classifier_module import ClassifierModule, fit_keep_best
from chestclip.utils.distributed import spawning_children, written_by_leader
from chestclip.utils.run_layout import BASELINE_FILE, RunLayout, prepared_identity

FINETUNED = "image-finetuned"


class ImageClassifier(nn.Module):
    """An image encoder with a linear normal/diseased layer: pixels [B, 1, H, W] → logits [B, 2].

    ``image_encoder`` and ``encode_image`` follow ChestCLIP's names, so the explanation methods
    and ``head_score`` (with ``classifier`` as the head) explain it unchanged.
    """

    def __init__(self, encoder: ImageEncoder, n_classes: int = 2):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.output_dim, n_classes)

    @property
    def image_encoder(self) -> ImageEncoder:
        return self.encoder

    def encode_image(self, pixels: Tensor) -> Tensor:
        return self.encoder(pixels)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.classifier(self.encode_image(pixels))


@torch.no_grad()
def predict_probabilities(model: nn.Module, loader: DataLoader) -> np.ndarray:
    model.eval()
    return torch.cat([model(batch["image"]).softmax(-1)[:, 1] for batch in loader]).numpy()


def finetune_image_baseline(
    data_dir: str | Path,
    run: str | Path,
    config: RunConfig,
    splits: Sequence[str] = ("val", "test"),
) -> Path:
    """Fine-tune on train, keep the epoch with the best validation AUC, score ``splits``.

    Under DDP (``pretrain.strategy=ddp``) every rank runs this function; the best epoch is chosen
    on the whole validation set, gathered across ranks, and rank 0 alone writes the outputs.
    """
    data = PreparedData(data_dir)
    if not data.has_images:
        raise ChestClipError(
            f"{data.root}: prepared with --no-images; the image baseline needs images"
        )
    settings, model_settings = config.pretrain, config.model
    L.seed_everything(config.seed, workers=True, verbose=False)
    attn, size = model_settings.attn_implementation, int(data.array.shape[1])
    encoder = (
        pretrained_image_encoder(model_settings.init_from, attn, size)
        if model_settings.init_from
        else build_image_encoder(model_settings.image_encoder, attn, size)
    )
    classifier = ImageClassifier(encoder)
    module = ClassifierModule(classifier, settings.optimizer, settings.lr, settings.weight_decay)
    transform = make_augment(**settings.augment.model_dump())
    projection = data.view_filter(settings.views, ("train", "val", *splits), "the image baseline")

    def loader(split: str, train: bool) -> DataLoader:
        dataset = XrayReportDataset(data, split, projection, transform if train else None)
        return DataLoader(
            dataset, batch_size=settings.batch_size, shuffle=train, num_workers=settings.num_workers
        )

    layout = RunLayout(run)
    directory = layout.baseline(FINETUNED)
    call = {
        "stage": "baseline",
        "data": str(data.root.resolve()),
        "run": str(layout.root.resolve()),
        "config": config.model_dump(mode="json"),
    }
    with written_by_leader(directory) as tmp, spawning_children(call):
        best_epoch, val_auc = fit_keep_best(
            module,
            loader("train", True),
            loader("val", False),
            tmp,
            **settings.trainer_options(),
        )
        frames = []
        for split in splits:
            table = data.split_images(split, projection)[["image_id", "uid", "split", "label"]]
            frames.append(
                table.assign(score=predict_probabilities(classifier, loader(split, False)))
            )
        pd.concat(frames).to_csv(tmp / "scores.csv", index=False)
        save_file(
            {k: v.contiguous() for k, v in classifier.state_dict().items()},
            tmp / "model.safetensors",
        )
        info = {
            "name": FINETUNED,
            "image_encoder": model_settings.init_from or model_settings.image_encoder,
            "seed": config.seed,
            "best_epoch": best_epoch,
            "val_auc": val_auc,
            "image_encoder_config": encoder.backbone.config.to_dict(),
            "image_mean": list(encoder.image_mean),
            "image_std": list(encoder.image_std),
            "image_size": encoder.image_size,
            "attn_implementation": model_settings.attn_implementation,
            "views": "frontal" if projection else "all",
            "fingerprint": {"data_sha256": prepared_identity(data.root)},
            "image_pooling": encoder.pooling,
        }
        (tmp / BASELINE_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
    return directory


def load_image_baseline(run: str | Path) -> tuple[ImageClassifier, dict]:
    """The fine-tuned image baseline of ``run`` (eval mode) and its ``info.json``, offline."""
    directory = RunLayout(run).baseline(FINETUNED)
    info_file = directory / BASELINE_FILE
    if not info_file.is_file():
        raise ChestClipError(f"{directory}: missing; run `chestclip baseline image`")
    info = json.loads(info_file.read_text())
    needed = ("image_encoder_config", "image_mean", "image_std", "image_size")
    if any(key not in info for key in needed):
        raise ChestClipError(
            f"{info_file}: written by an older chestclip without the encoder's mean/std/size; "
            "rerun `chestclip baseline image`"
        )
    encoder = rebuild_image_encoder(
        info["image_encoder_config"],
        info["image_mean"],
        info["image_std"],
        info["image_size"],
        info.get("attn_implementation", "sdpa"),
        info.get("image_pooling", "cls"),
    )
    classifier = ImageClassifier(encoder)
    try:
        load_weights(classifier, directory / "model.safetensors", BASELINE_FILE)
    except ValueError as error:
        raise ChestClipError(str(error)) from None
    return classifier.eval(), info
