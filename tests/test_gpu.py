"""The tiny study on a CUDA GPU (skipped without one): pre-training on the GPU, every later stage
with ``device="cuda"`` and bf16 autocast for features, and the same predictions as on the CPU."""

import json

import pytest
import torch

from chestclip.config import load_run_config
from chestclip.inference.predict import Predictor
from chestclip.phantom import generate_phantoms
from chestclip.pipeline import STAGES, run_pipeline
from chestclip.utils.device import model_device
from chestclip.utils.run_layout import RunLayout

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_tiny_pipeline_on_cuda(tmp_path, xray_files):
    source = tmp_path / "phantoms"
    generate_phantoms(source, studies=120, image_size=96, layout="kaggle", seed=2, visibility=3.0)
    gpu = ["pretrain.accelerator=gpu", "pretrain.devices=1", "pretrain.precision=bf16-mixed"]
    config = load_run_config("tiny", ["pretrain.epochs=2", "probe.epochs=3", *gpu])
    torch.cuda.reset_peak_memory_stats()
    run = run_pipeline(config, source, tmp_path / "run", n_boot=20, explain_limit=4, device="cuda")
    layout = RunLayout(run)
    for stage in STAGES:
        assert json.loads(layout.stage_record(stage.name).read_text())["status"] == "done"
    assert layout.report.is_file() and torch.cuda.max_memory_allocated() > 0

    on_gpu, on_cpu = Predictor.load(run, "cuda"), Predictor.load(run, "cpu")
    assert model_device(on_gpu.model).type == "cuda"
    image = on_cpu.read(xray_files["png"])
    expected = on_cpu.predict(image, drafts=0).probabilities
    assert on_gpu.predict(image, drafts=0).probabilities == pytest.approx(expected, abs=1e-3)
