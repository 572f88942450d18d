"""Explanations: which parts of an X-ray drove a head's prediction, and can we trust the map?

Hand-written rather than built on pytorch-grad-cam: that package needs torchvision, whose
registry builds break ``import transformers`` next to our pinned CPU torch (see DEVELOPERS.md).
Its ViT recipe (Grad-CAM on a block's tokens via ``reshape_transform``) is our ``gradcam``. The
design follows it: one small module per method behind one interface (:class:`CamMethod`: hooks,
gradients and post-processing live in ``base``), the target score as an argument
(:func:`head_score`), and the faithfulness metrics reusing the same score contract.

Typical use::

    head, info = load_head(RunLayout(run).head("multimodal"))
    score = head_score(model.eval(), head, info["kind"], text_embedding, target=1)
    heatmap = explain(model, pixels, score, "attention-gradcam")  # [H, W] in [0, 1]
    masses = zone_masses(heatmap)  # {zone: share of the map's mass}, summing to 1
    agreement(masses, mentioned_zones(report_text))

Modules: ``base`` (interface, hooks), one module per method (``attention_gradcam``, ``gradcam``,
``rollout``, ``cnn_gradcam``), ``registry`` (``METHODS``, ``explain``), ``roi`` (anatomical zones),
``anatomy`` (zones placed on each frontal film's lungs and heart, the template as fallback),
``lexicon`` (zones a report mentions), ``faithfulness`` (deletion/insertion, pointing game, energy
in the lesion, cascading randomisation), ``summary`` (per-method figures with intervals, the
default method), ``overlay`` (figures), ``measure`` (a split explained image by image), ``stage``
(``chestclip explain``).
"""

from chestclip.explain.base import CamMethod, ScoreFunction, head_score, normalise, to_heatmap
from chestclip.explain.faithfulness import (
    Curve,
    Faithfulness,
    RandomisationStep,
    area_fraction,
    cascading_randomisation,
    default_grid,
    energy_in_lesion,
    faithfulness,
    perturbation_curve,
    pointing_hit,
    randomisation_check,
    randomised_copy,
    rank_correlations,
    topk_iou,
)
from chestclip.explain.lexicon import Mention, agreement, find_mentions, mentioned_zones
from chestclip.explain.overlay import (
    OverlayPanel,
    gallery_figure,
    overlay_caption,
    overlay_figure,
    save_gallery,
    save_overlay,
)
from chestclip.explain.registry import METHODS, explain, methods_for
from chestclip.explain.roi import ZONES, exclusive_masks, top_zones, zone_masks, zone_masses

__all__ = [
    "METHODS",
    "ZONES",
    "CamMethod",
    "Curve",
    "Faithfulness",
    "Mention",
    "OverlayPanel",
    "RandomisationStep",
    "ScoreFunction",
    "agreement",
    "area_fraction",
    "cascading_randomisation",
    "default_grid",
    "energy_in_lesion",
    "exclusive_masks",
    "explain",
    "faithfulness",
    "find_mentions",
    "gallery_figure",
    "head_score",
    "mentioned_zones",
    "methods_for",
    "normalise",
    "overlay_caption",
    "overlay_figure",
    "perturbation_curve",
    "pointing_hit",
    "randomisation_check",
    "randomised_copy",
    "rank_correlations",
    "save_gallery",
    "save_overlay",
    "to_heatmap",
    "top_zones",
    "topk_iou",
    "zone_masks",
    "zone_masses",
]
