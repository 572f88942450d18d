"""Pre-training and the fine-tuned image baseline starting from a pretrained dual encoder
(``model.init_from``), and the one-line error when a whole CLIP is given as an image encoder."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from chestclip.cli import main
from chestclip.config import load_run_config
from chestclip.data import PreparedData
from chestclip.models import load_clip
from chestclip.training.finetune import finetune_image_baseline, load_image_baseline
from chestclip.training.pretrain import pretrain

pytestmark = pytest.mark.slow
SHORT = ["pretrain.epochs=1", "pretrain.limit_train_batches=2", "model.max_text_length=64"]


def test_pretrain_and_baseline_start_from_a_hf_clip(
    dual_encoder_sources, prepared_phantoms, tmp_path
):
    source = tmp_path / "clip-source"
    shutil.copytree(dual_encoder_sources["hf-clip"].path, source)
    config = load_run_config("tiny", [*SHORT, f"model.init_from={source}"])
    result = pretrain(prepared_phantoms, tmp_path / "run", config)
    finetune_image_baseline(prepared_phantoms, tmp_path / "run", config)
    shutil.rmtree(source)  # everything below is rebuilt from the run alone

    model, tokenizer = load_clip(result.run)
    assert model.config.init_from == str(source)
    assert type(model.image_encoder.backbone).__name__ == "CLIPVisionModel"
    assert type(model.text_encoder.backbone).__name__ == "CLIPTextModel"
    assert model.config.embed_dim == 16 and model.image_encoder.token_grid == (8, 8)
    assert len(tokenizer) == model.text_encoder.backbone.config.vocab_size  # the source's own

    classifier, info = load_image_baseline(result.run)
    assert info["image_encoder"] == str(source) and info["image_pooling"] == "pooler"
    data = PreparedData(prepared_phantoms)
    val = data.split_images("val").iloc[:4]
    pixels = torch.from_numpy(data.array[val["row"].to_numpy()].astype(np.float32) / 255)
    with torch.no_grad():
        reloaded = classifier(pixels[:, None]).softmax(-1)[:, 1].numpy()
    scores = pd.read_csv(result.run / "baselines/image-finetuned/scores.csv").set_index("image_id")
    np.testing.assert_allclose(reloaded, scores.loc[val["image_id"], "score"], atol=1e-5)


def test_whole_clip_as_image_encoder_is_one_line(
    dual_encoder_sources, prepared_phantoms, tmp_path, monkeypatch, capsys
) -> None:
    path = dual_encoder_sources["hf-clip"].path
    args = ["pretrain", "--data", str(prepared_phantoms), "--run", str(tmp_path / "run")]
    args += ["--config", "tiny", "--set", f"model.image_encoder={path}"]
    monkeypatch.setattr(sys, "argv", ["chestclip", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1
    assert err.startswith(f"chestclip: error: {path}: a full clip dual encoder")
    assert f"model.init_from={path}" in err
