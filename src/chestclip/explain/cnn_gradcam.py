"""Classic Grad-CAM (Selvaraju et al. 2017) on the last convolutional stage of a CNN encoder.

For transformers' ResNet/ConvNeXt models that is ``backbone.encoder.stages[-1]``, whose output
``[1, C, h, w]`` is the last feature map before pooling: weights are the gradients averaged over
``h × w``, the map is ``ReLU(Σ_c w_c · A_c)``.
"""

from __future__ import annotations

from torch import Tensor

from chestclip.explain.base import CamMethod, ScoreFunction, cnn_stages, outputs_and_gradients
from chestclip.models import ChestCLIP, ImageEncoder


class CNNGradCAM(CamMethod):
    name = "cnn-gradcam"
    requirement = "a convolutional encoder (backbone.encoder.stages, e.g. ResNet)"

    def applies_to(self, encoder: ImageEncoder) -> bool:
        return cnn_stages(encoder) is not None

    def grid_map(self, model: ChestCLIP, pixels: Tensor, score_fn: ScoreFunction) -> Tensor:
        last_stage = cnn_stages(model.image_encoder)[-1]
        (features,), (gradient,) = outputs_and_gradients(
            [last_stage], lambda out: out, pixels, score_fn
        )  # [1, C, h, w] each
        weights = gradient[0].mean(dim=(1, 2))  # [C]
        return (weights[:, None, None] * features[0]).sum(dim=0).clamp(min=0)  # [h, w]
