"""CAM methods: contract (shape, range, hooks, modes), registry, and localisation on models whose
score provably depends only on a known region (see conftest)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chestclip.explain import METHODS, explain, head_score, methods_for
from chestclip.models import ChestCLIP
from chestclip.models.heads import MLPHead

VIT_METHODS = ["attention-gradcam", "gradcam", "rollout"]
ENCODER_METHODS = [("tiny-vit", name) for name in VIT_METHODS] + [("tiny-resnet", "cnn-gradcam")]
SIZE = 64


@pytest.fixture(scope="module")
def random_models(make_clip) -> dict[str, tuple[ChestCLIP, MLPHead]]:
    """Random tiny CLIPs with a random multimodal head (image ⊕ text, 64 inputs)."""
    models = {}
    for encoder in ("tiny-vit", "tiny-resnet"):
        model = make_clip(encoder, seed=1)
        models[encoder] = (model, _random_head())
    return models


def _random_head() -> MLPHead:
    # Seeded so every method's map of the diseased log-odds is non-empty: attention Grad-CAM's
    # ReLU zeroes the whole map when the head-weighted attention is negative on every patch,
    # which happens for most random heads (all but seeds 2, 3 and 5 of 0-7).
    torch.manual_seed(2)
    return MLPHead(64, (16,)).eval()


def _text() -> torch.Tensor:
    torch.manual_seed(2)
    return torch.nn.functional.normalize(torch.randn(32), dim=0)


def _multimodal_score(model: ChestCLIP, head: MLPHead, target: int = 1):
    return head_score(model, head, "multimodal", _text(), target=target)


def _pixels(seed: int = 3) -> torch.Tensor:
    return torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("encoder", "method"), ENCODER_METHODS)
def test_maps_are_image_sized_in_unit_range_and_not_empty(random_models, encoder, method):
    model, head = random_models[encoder]
    heatmap = explain(model, _pixels(), _multimodal_score(model, head), method)
    assert heatmap.shape == (SIZE, SIZE) and heatmap.dtype == np.float32
    assert heatmap.min() == 0.0 and heatmap.max() == 1.0  # gradients reached the layer


def test_registry_lists_the_methods_that_apply(random_models):
    assert list(METHODS) == [*VIT_METHODS, "cnn-gradcam"]
    assert methods_for(random_models["tiny-vit"][0]) == VIT_METHODS
    assert methods_for(random_models["tiny-resnet"][0]) == ["cnn-gradcam"]


def test_inapplicable_or_unknown_methods_are_refused(random_models):
    model, head = random_models["tiny-resnet"]
    score = _multimodal_score(model, head)
    with pytest.raises(ValueError, match=r"attention-gradcam does not apply.*cnn-gradcam"):
        explain(model, _pixels(), score, "attention-gradcam")
    with pytest.raises(ValueError, match="unknown explanation method"):
        explain(model, _pixels(), score, "lime")
    with pytest.raises(ValueError, match="needs a ViT-style encoder"):
        METHODS["rollout"](model, _pixels(), score)


@pytest.mark.parametrize(("encoder", "method"), ENCODER_METHODS)
def test_hooks_are_removed_and_errors_propagate(random_models, encoder, method):
    model, head = random_models[encoder]
    score = _multimodal_score(model, head)
    explain(model, _pixels(), score, method)

    def failing(pixels: torch.Tensor) -> torch.Tensor:
        score(pixels)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        explain(model, _pixels(), failing, method)
    assert not any(module._forward_hooks for module in model.modules())


def test_sdpa_model_is_explained_with_eager_attention_and_restored(make_clip):
    sdpa, eager = make_clip("tiny-vit", "sdpa", seed=1), make_clip("tiny-vit", "eager", seed=1)
    head = _random_head()
    for method in VIT_METHODS:
        expected = explain(eager, _pixels(), _multimodal_score(eager, head), method)
        heatmap = explain(sdpa, _pixels(), _multimodal_score(sdpa, head), method)
        assert heatmap.max() == 1.0
        np.testing.assert_allclose(heatmap, expected, atol=1e-5)
        assert sdpa.image_encoder.backbone.config._attn_implementation == "sdpa"


def test_frozen_model_is_explained_without_touching_parameter_gradients(random_models):
    model, head = random_models["tiny-vit"]
    model.requires_grad_(False)
    try:
        heatmap = explain(model, _pixels(), _multimodal_score(model, head), "attention-gradcam")
    finally:
        model.requires_grad_(True)
    assert heatmap.max() == 1.0
    assert all(parameter.grad is None for parameter in model.parameters())


def test_bad_inputs_are_refused(random_models):
    model, head = random_models["tiny-vit"]
    score = _multimodal_score(model, head)
    with pytest.raises(ValueError, match=r"\[1, 1, H, W\]"):
        explain(model, torch.rand(2, 1, SIZE, SIZE), score, "rollout")
    model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            explain(model, _pixels(), score, "rollout")
    finally:
        model.eval()


def test_head_score_holds_the_text_fixed_and_checks_its_inputs(random_models):
    model, head = random_models["tiny-vit"]
    text = torch.randn(32, requires_grad=True)
    score = head_score(model, head, "multimodal", text)
    explain(model, _pixels(), score, "gradcam")
    assert text.grad is None  # detached: only the image is explained
    pixels = torch.rand(3, 1, SIZE, SIZE)
    with torch.no_grad():
        diseased = head_score(model, head, "multimodal", text, target=1, probability=True)(pixels)
        normal = head_score(model, head, "multimodal", text, target=0, probability=True)(pixels)
    assert diseased.shape == (3,)
    torch.testing.assert_close(diseased + normal, torch.ones(3))
    with pytest.raises(ValueError, match="does not see the image"):
        head_score(model, head, "text", text)
    with pytest.raises(ValueError, match="needs the study's text_embedding"):
        head_score(model, head, "multimodal")
    with pytest.raises(ValueError, match="takes 64 features"):
        head_score(model, head, "image")(pixels)


def test_the_explained_score_is_the_log_odds_of_the_target_class(random_models):
    """What a decision P(diseased) ≥ t depends on: logit[1] − logit[0], not logit[1] alone."""
    model, head = random_models["tiny-vit"]
    pixels = torch.rand(3, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for target in (0, 1):
            score = _multimodal_score(model, head, target)(pixels)
            probability = head_score(model, head, "multimodal", _text(), target, True)(pixels)
            torch.testing.assert_close(score, torch.log(probability / (1 - probability)))


def test_evidence_that_moves_only_the_normal_logit_is_explained(vit_detector, lesion):
    """A head whose diseased logit is constant and whose normal logit falls with the lesion:
    P(diseased) rises with the lesion, so the map must find it (logit[1] alone is flat)."""
    model, detector = vit_detector
    head = MLPHead(32, hidden_sizes=()).eval()
    with torch.no_grad():
        head.net[0].weight.copy_(detector.net[0].weight)
        head.net[0].weight[1] = 0.0  # logits = (−GAIN z_0, 0)
        head.net[0].bias.zero_()
    score = head_score(model, head, "image")
    _assert_on_lesion(explain(model, lesion.pixels, score, "attention-gradcam"), lesion, margin=4)


def _assert_on_lesion(heatmap: np.ndarray, lesion, margin: int) -> None:
    """Maximum on the lesion, and > 90 % of the mass within ``margin`` px of it."""
    row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert lesion.mask[row, col], f"maximum at {(row, col)}, outside the lesion"
    assert heatmap[lesion.near(margin)].sum() / heatmap.sum() > 0.9


@pytest.mark.parametrize("method", VIT_METHODS)
def test_vit_maps_peak_on_the_only_region_the_score_reads(vit_detector, lesion, method):
    model, head = vit_detector
    score = head_score(model, head, "image")
    # bilinear upsampling spreads a token's value half a token (4 px) beyond it
    _assert_on_lesion(explain(model, lesion.pixels, score, method), lesion, margin=4)


def test_cnn_map_peaks_on_the_only_region_the_score_reads(cnn_detector, lesion):
    model, head = cnn_detector
    score = head_score(model, head, "image")
    # the stem's 7 x 7 kernel and max-pooling blur by about one feature cell (8 px)
    _assert_on_lesion(explain(model, lesion.pixels, score, "cnn-gradcam"), lesion, margin=8)
