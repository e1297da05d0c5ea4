"""ORB feature matching (cryocube.ice_features) against exact truth: synthetic rigid floes (cryocube.ice_scenes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryocube.ice_features import match_features, to_uint8
from cryocube.ice_scenes import floe_pair, truth_at


@pytest.fixture(scope="module")
def pair():
    return floe_pair((384, 384), n_floes=6, seed=3)


def test_to_uint8_is_the_documented_linear_map():
    image = np.array([[-30.0, -17.5, -5.0], [-40.0, 0.0, np.nan]], dtype=np.float32)
    out = to_uint8(image, db_range=(-30.0, -5.0))
    assert out.dtype == np.uint8
    # 255 (s + 30) / 25, clipped, NaN -> 0
    np.testing.assert_array_equal(out, [[0, 127, 255], [0, 255, 0]])
    ramp = np.linspace(0, 1, 9999, dtype=np.float32).reshape(101, 99)
    scaled = to_uint8(ramp, percentiles=(10, 90))
    assert (scaled[ramp <= 0.1] == 0).all() and (scaled[ramp >= 0.9] == 255).all()


def test_vectors_follow_the_true_floe_motion(pair):
    reference, secondary, truth = pair
    vectors = match_features(reference, secondary, n_features=4000)
    assert {"x1", "y1", "x2", "y2", "row1", "col1", "row2", "col2", "quality", "distance", "ratio"} <= set(vectors.columns)
    assert len(vectors) > 300
    tx, ty, _ = truth_at(truth, vectors.x1.to_numpy(), vectors.y1.to_numpy())
    error_px = np.hypot(vectors.x2 - vectors.x1 - tx, vectors.y2 - vectors.y1 - ty).to_numpy() / 100.0
    valid = np.isfinite(error_px)
    # measured: median 1.1 px, 85-88 % within 2 px (ORB keypoints on coarse pyramid levels are ~1-3 px precise)
    assert np.median(error_px[valid]) < 1.5
    assert np.mean(error_px[valid] < 3) > 0.85
    assert ((vectors.quality > 0) & (vectors.quality <= 1)).all() and (vectors.ratio < 0.7).all()
    # pixel and map columns agree (x grows with col, y falls with row, 100 m pixels)
    np.testing.assert_allclose(vectors.x2 - vectors.x1, 100.0 * (vectors.col2 - vectors.col1))
    np.testing.assert_allclose(vectors.y2 - vectors.y1, -100.0 * (vectors.row2 - vectors.row1))
    assert vectors.attrs["dt_s"] == pytest.approx(86400.0)


def test_speed_limit_uses_the_time_between_the_images(pair):
    reference, secondary, truth = pair
    # every floe moves 8-22 px = 0.8-2.2 km in the day: 0.01 - 0.026 m/s
    slow = match_features(reference, secondary, n_features=2000, max_speed_m_s=0.005)
    speed = np.hypot(slow.x2 - slow.x1, slow.y2 - slow.y1) / 86400.0
    assert (speed <= 0.005).all()
    fast = match_features(reference, secondary, n_features=2000, max_speed_m_s=0.05)
    assert len(fast) > 10 * max(len(slow), 1)
    # dt_s overrides the time coordinates: the same limit over a 10x longer interval keeps the good vectors
    longer = match_features(reference, secondary, n_features=2000, max_speed_m_s=0.005, dt_s=864000.0)
    assert len(longer) > 10 * max(len(slow), 1)


def test_bad_input_is_named(pair):
    reference, secondary, _ = pair
    with pytest.raises(ValueError, match="dt_s"):
        match_features(reference.drop_vars("time"), secondary.drop_vars("time"))
    with pytest.raises(ValueError, match="ratio"):
        match_features(reference, secondary, ratio=1.5)
    with pytest.raises(ValueError, match="n_features"):
        match_features(reference, secondary, n_features=1)
    with pytest.raises(ValueError, match="differ in shape"):
        match_features(reference, secondary.isel(x=slice(0, 200)))
    with pytest.raises(TypeError, match="reference"):
        match_features(np.zeros((10, 10)), secondary)
    # no limit needs no time
    assert len(match_features(reference.drop_vars("time"), secondary.drop_vars("time"), max_speed_m_s=None, n_features=500)) > 0


def test_flann_matcher_is_deterministic_and_agrees_with_truth(pair):
    reference, secondary, truth = pair
    first = match_features(reference, secondary, n_features=3000, matcher="flann")
    again = match_features(reference, secondary, n_features=3000, matcher="flann")
    pd.testing.assert_frame_equal(first, again)
    tx, ty, _ = truth_at(truth, first.x1.to_numpy(), first.y1.to_numpy())
    error_px = np.hypot(first.x2 - first.x1 - tx, first.y2 - first.y1 - ty).to_numpy() / 100.0
    assert len(first) > 200 and np.nanmedian(error_px) < 1.5
    with pytest.raises(ValueError, match="matcher"):
        match_features(reference, secondary, matcher="knn")
