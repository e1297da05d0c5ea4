"""Pre-filters: what they remove and keep, NaN handling, blockwise equality, and their measured benefit on optical pairs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

import cryocube as cc
from cryocube import synthetic as syn
from cryocube.prefilters import highpass, wallis
from tests.conftest import REPO


def _texture(shape=(200, 200), seed=0):
    return ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 1.0)


def test_highpass_removes_a_ramp_and_keeps_texture():
    texture = _texture()
    rows, cols = np.mgrid[0:200, 0:200]
    ramp = 0.05 * rows - 0.03 * cols + 7.0
    inner = (slice(20, -20), slice(20, -20))
    np.testing.assert_allclose(highpass(texture + ramp, 4.0)[inner], highpass(texture, 4.0)[inner], atol=1e-4)
    assert np.corrcoef(highpass(texture, 4.0)[inner].ravel(), texture[inner].ravel())[0, 1] > 0.9


def test_wallis_equalizes_contrast_and_keeps_nan():
    texture = _texture()
    texture[:, 100:] *= 10.0  # a bright half
    texture[50:60, 50:60] = np.nan
    out = wallis(texture, 4.0)
    assert np.isnan(out[50:60, 50:60]).all() and np.isfinite(out[100:, :45]).all()
    left, right = np.nanstd(out[20:-20, 20:80]), np.nanstd(out[20:-20, 120:180])
    assert 0.8 < left / right < 1.25


@pytest.mark.parametrize("method", ["highpass", "wallis"])
def test_prefiltered_tracking_is_chunk_invariant(method):
    base = _texture((240, 240), seed=1)
    moved = np.roll(base, 3, axis=1)
    coords = {"y": -np.arange(240.0), "x": np.arange(240.0)}
    ref, sec = (xr.DataArray(a.astype("float32"), dims=("y", "x"), coords=coords) for a in (base, moved))
    one = cc.track_offsets(ref, sec, prefilter=method).compute()
    many = cc.track_offsets(ref.chunk(50), sec.chunk(50), prefilter=method).compute()
    xr.testing.assert_identical(one, many)
    np.testing.assert_allclose(one.dx.values[3:-3, 3:-6], 3.0, atol=0.1)
    with pytest.raises(ValueError, match="prefilter"):
        cc.track_offsets(ref, sec, prefilter="sobel")


def test_wallis_returns_more_of_the_optical_glacier():
    """Measured on the bundled S2 pairs: coverage over the glacier 0.72-0.77 without, 0.96-0.99 with Wallis (sigma 4 px)."""
    cube = cc.build_cube(cc.search(REPO / "catalogs" / "greenland-s2" / "catalog.json"), assets=["B08"])
    reference, secondary = cc.select_pair(cube, 0, 1)
    coverage = {}
    for method in (None, "wallis"):
        offsets = cc.track_offsets(reference, secondary, search_px=8, prefilter=method).compute()
        glacier = syn.glacier_mask(*np.meshgrid(offsets.x.values, offsets.y.values))
        coverage[method] = float(np.isfinite(offsets.dx.values[glacier]).mean())
    assert coverage["wallis"] > coverage[None] + 0.1, coverage
