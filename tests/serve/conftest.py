"""One predictor on ``evaluated_run`` (conftest above) shared by every app the tests build.
Test clients call the app as ``http://localhost`` (the app answers to loopback names only)."""

import pytest
from fastapi.testclient import TestClient

from chestclip.inference.predict import Predictor
from chestclip.serve import create_app

LOCAL = "http://localhost"


@pytest.fixture(scope="session")
def predictor(evaluated_run) -> Predictor:
    return Predictor.load(evaluated_run)


@pytest.fixture(scope="session")
def client(evaluated_run, predictor) -> TestClient:
    return TestClient(create_app(evaluated_run, predictor=predictor), base_url=LOCAL)
