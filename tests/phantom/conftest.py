"""Small phantom datasets shared by the phantom tests (generated once per session)."""

from __future__ import annotations

import pytest

from chestclip.phantom import PhantomSummary, generate_phantoms

STUDIES = 40
SIZE = 96
SEED = 3


@pytest.fixture(scope="session")
def openi(tmp_path_factory: pytest.TempPathFactory) -> PhantomSummary:
    """An openi-layout phantom dataset."""
    out = tmp_path_factory.mktemp("phantom") / "openi"
    return generate_phantoms(out, studies=STUDIES, image_size=SIZE, layout="openi", seed=SEED)


@pytest.fixture(scope="session")
def kaggle(tmp_path_factory: pytest.TempPathFactory) -> PhantomSummary:
    """The same studies as ``openi``, in the kaggle layout."""
    out = tmp_path_factory.mktemp("phantom") / "kaggle"
    return generate_phantoms(out, studies=STUDIES, image_size=SIZE, layout="kaggle", seed=SEED)


@pytest.fixture(scope="session")
def invisible(tmp_path_factory: pytest.TempPathFactory) -> PhantomSummary:
    """The same studies as ``openi`` with ``visibility=0``: no lesions drawn."""
    out = tmp_path_factory.mktemp("phantom") / "invisible"
    return generate_phantoms(out, studies=STUDIES, image_size=SIZE, seed=SEED, visibility=0.0)
