"""The view check: is a new image a frontal or a lateral film, from its pixels alone.

The classifier is the real-data path's view inference (``chestclip.data.views``, which tells the
projection of archive images whose metadata lacks one); this module only asks it about one image,
so that ``predict``, ``serve`` and ``explain --image`` and the data path agree on what a view is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from chestclip.data.views import infer_projection


@dataclass(frozen=True)
class ViewCheck:
    projection: str  # chestclip.data.records.FRONTAL or LATERAL
    p_frontal: float

    def as_dict(self) -> dict[str, Any]:
        return {"projection": self.projection, "p_frontal": self.p_frontal}


def check_view(image: np.ndarray) -> ViewCheck:
    """The projection of ``image`` uint8 [S, S]."""
    guess = infer_projection(image)
    return ViewCheck(guess.projection, float(guess.p_frontal))
