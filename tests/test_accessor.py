"""The .cryo accessor forwards to the functions it lists, with the Dataset first."""

from __future__ import annotations

import importlib

import xarray as xr

import cryocube  # noqa: F401  (registers .cryo)
from cryocube.accessor import FORWARDS, PAIR_FORWARDS
from cryocube.detector_offsets import correct_detector_offsets
from tests.test_detector_offsets import _scene


def test_every_forward_resolves_to_a_function():
    for name, (module, function) in {**FORWARDS, **PAIR_FORWARDS}.items():
        assert callable(getattr(importlib.import_module(module), function)), (name, module, function)
        assert getattr(xr.Dataset().cryo, name).__name__ == name


def test_forwarding_passes_the_dataset_first():
    ds, footprint, stable, _, _ = _scene(n_pairs=1)
    xr.testing.assert_identical(ds.cryo.correct_detector_offsets(footprint, stable_mask=stable),
                                correct_detector_offsets(ds, footprint, stable_mask=stable))
