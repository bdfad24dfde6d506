"""Shared fixtures: one sample AEF mirror per test session, written in the published layout."""

import os

import pytest

import tests  # noqa: F401 - puts the plugin on sys.path as `geoembed` before any test imports it

# Headless Qt for every tier; set here (an initial conftest) so it holds before pytest-qgis starts QGIS.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.fixtures.aef import build_mirror, sample_specs


@pytest.fixture(scope="session")
def aef_mirror(tmp_path_factory):
    """Root folder holding v1/annual/{year}/{zone}/*.tiff, aef_index.parquet and aef_index.csv."""
    root = tmp_path_factory.mktemp("aef-mirror")
    build_mirror(root)
    return root


@pytest.fixture(scope="session")
def aef_specs():
    return sample_specs()
