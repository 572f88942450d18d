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
from chestclip.utils.io import atomic_directory
from chestclip.utils.run_layout import HEAD_FILE, RunLayout


def export_hub_folder(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's Hub folder (layout in the module docstring) atomically; ``out`` defaults
    to ``RUN/hub``. Needs ``chestclip probe`` and ``chestclip evaluate``."""
    layout = RunLayout(run)
    out = Path(out) if out is not None else layout.hub
    clip = resolve_clip_dir(layout.root)
    card = render_model_card(layout.root)  # also checks that the run was evaluated
    thresholds = validation_thresholds(layout.root)
    heads = layout.head_dirs()
    if not heads:
        raise ChestClipError(
            f"{layout.root}: no heads in {layout.heads.name}/; run `chestclip probe` first"
        )
    with atomic_directory(out) as tmp:
        exported = RunLayout(tmp)  # the folder keeps the run's own layout
        (tmp / "README.md").write_text(card, encoding="utf-8")
        for name in (CONFIG_NAME, WEIGHTS_NAME, layout.training_data.name):
            shutil.copy2(clip / name, tmp / name)
        shutil.copytree(clip / TOKENIZER_DIR, tmp / TOKENIZER_DIR)
        for head in heads:
            target = exported.head(head.name)
            target.mkdir(parents=True)
            shutil.copy2(head / "head.safetensors", target / "head.safetensors")
            info: dict[str, Any] = json.loads((head / HEAD_FILE).read_text())
            info["threshold"] = thresholds.get(info["name"])  # thresholds travel with weights
            (target / HEAD_FILE).write_text(json.dumps(info, indent=2) + "\n")
        exported.metrics.parent.mkdir()
        shutil.copy2(layout.metrics, exported.metrics)
        if layout.config.is_file():
            shutil.copy2(layout.config, tmp / layout.config.name)
        if layout.onnx.is_dir():
            shutil.copytree(layout.onnx, tmp / layout.onnx.name)
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
