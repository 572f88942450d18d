"""A run as one Hugging Face Hub folder, and ``chestclip push`` (``huggingface_hub`` uploads it).

The folder is itself a run directory for inference (``chestclip predict --run FOLDER``,
``Predictor.load``, ``ChestCLIP.from_pretrained``)::

    README.md            the run's model card: Hub YAML metadata + Markdown
    config.json          ChestCLIPConfig          model.safetensors   the CLIP's weights
    tokenizer/           the text tokenizer       data.json           how new inputs are prepared
    heads/<name>/        head.safetensors + head.json, with its validation threshold
    eval/metrics.json    test metrics with CIs (the thresholds predict applies)
    config.yaml          the run's resolved config
    onnx/                the ONNX graphs, when `chestclip export --format onnx` made them

The training index of reports (``retrieval/``) is left out: it is training data, not model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chestclip.errors import ChestClipError
from chestclip.inference.model_card import render_model_card
from chestclip.inference.predict import validation_thresholds
from chestclip.models.io import CONFIG_NAME, TOKENIZER_DIR, WEIGHTS_NAME, resolve_clip_dir
from chestclip.training.pretrain import TRAINING_DATA
from chestclip.training.probe import HEADS_DIR
from chestclip.utils.io import atomic_directory

HUB_DIR = "hub"  # default export folder inside the run
METRICS = "eval/metrics.json"
ONNX_DIR = "onnx"


def export_hub_folder(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's Hub folder (layout in the module docstring) atomically; ``out`` defaults
    to ``RUN/hub``. Needs ``chestclip probe`` and ``chestclip evaluate``."""
    run = Path(run)
    out = Path(out) if out is not None else run / HUB_DIR
    clip = resolve_clip_dir(run)
    card = render_model_card(run)  # also checks that the run was evaluated
    thresholds = validation_thresholds(run)
    heads = sorted(path.parent for path in (run / HEADS_DIR).glob("*/head.json"))
    if not heads:
        raise ChestClipError(f"{run}: no heads in {HEADS_DIR}/; run `chestclip probe` first")
    with atomic_directory(out) as tmp:
        (tmp / "README.md").write_text(card, encoding="utf-8")
        for name in (CONFIG_NAME, WEIGHTS_NAME, TRAINING_DATA):
            shutil.copy2(clip / name, tmp / name)
        shutil.copytree(clip / TOKENIZER_DIR, tmp / TOKENIZER_DIR)
        for head in heads:
            target = tmp / HEADS_DIR / head.name
            target.mkdir(parents=True)
            shutil.copy2(head / "head.safetensors", target / "head.safetensors")
            info: dict[str, Any] = json.loads((head / "head.json").read_text())
            info["threshold"] = thresholds.get(info["name"])  # thresholds travel with weights
            (target / "head.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / METRICS).parent.mkdir()
        shutil.copy2(run / METRICS, tmp / METRICS)
        if (run / "config.yaml").is_file():
            shutil.copy2(run / "config.yaml", tmp / "config.yaml")
        if (run / ONNX_DIR).is_dir():
            shutil.copytree(run / ONNX_DIR, tmp / ONNX_DIR)
    return out


def push_run(
    run: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    log: Callable[[str], None] = print,
) -> str:
    """Export ``run`` (:func:`export_hub_folder`, to a temporary folder) and upload it to the
    Hub model repository ``repo_id`` (created if needed) in one commit; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="chestclip-push-") as tmp:
        folder = export_hub_folder(run, Path(tmp) / "model")
        log(f"exported {Path(run)} → {folder}; uploading to {repo_id}")
        try:
            api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                repo_type="model",
                commit_message=f"chestclip run {Path(run).name}",
            )
        except OSError as error:  # huggingface_hub's HTTP, auth and offline errors
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ChestClipError(f"{repo_id}: push failed ({first})") from None
    return str(getattr(commit, "commit_url", commit))
