"""The encoder fitted on training rows: one reading encoded alone (a stream's) equals it encoded in a frame (eval's),
and encoded values decode back to the frame's units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinids.data.encoding import FeatureEncoder


def frame(seed: int, kinds: tuple[str, ...] = ("pump", "tank")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "level": rng.normal(50, 10, 40),
            "flow": rng.exponential(3, 40),
            "on": rng.integers(0, 2, 40),
            "kind": rng.choice(kinds, 40),
        }
    )


@pytest.mark.parametrize("scaler", ["standard", "minmax", "none"])
def test_one_reading_encodes_as_it_does_in_a_frame(scaler):
    encoder = FeatureEncoder(scaler).fit(frame(0))
    later = frame(1, kinds=("pump", "tank", "valve"))  # a kind training never saw encodes as zeros, in both
    encoded = encoder.transform(later[encoder.columns])
    for index, record in enumerate(later.to_dict("records")):
        assert np.array_equal(encoder.encode_record(record), encoded[index])


@pytest.mark.parametrize("scaler", ["standard", "minmax", "none"])
def test_an_encoder_rebuilt_from_its_json_state_encodes_readings_to_the_same_bits(scaler):
    import json

    encoder = FeatureEncoder(scaler).fit(frame(0))
    rebuilt = FeatureEncoder.from_state(json.loads(json.dumps(encoder.state())))
    assert rebuilt.columns == encoder.columns and rebuilt.feature_names == encoder.feature_names
    for record in frame(1, kinds=("pump", "tank", "valve")).to_dict("records"):
        assert np.array_equal(rebuilt.encode_record(record), encoder.encode_record(record))
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt.decoding(), encoder.decoding(), strict=True))


def test_a_state_whose_lists_disagree_is_refused():
    from twinids.errors import TwinIDSError

    state = FeatureEncoder("standard").fit(frame(0)).state()
    state["statistics"]["mean"] = state["statistics"]["mean"][:-1]
    with pytest.raises(TwinIDSError, match="do not match its columns"):
        FeatureEncoder.from_state(state)


def test_a_reading_missing_a_column_names_it():
    encoder = FeatureEncoder("standard").fit(frame(0))
    with pytest.raises(KeyError, match="flow"):
        encoder.encode_record({"level": 1.0, "on": 0, "kind": "pump"})


@pytest.mark.parametrize("scaler", ["standard", "minmax", "none"])
def test_encoded_values_decode_to_the_frames_units(scaler):
    rows = frame(0)
    encoder = FeatureEncoder(scaler).fit(rows)
    offset, scale = encoder.decoding()
    width = 3  # level, flow, on: the numeric columns come first
    decoded = offset[:width] + scale[:width] * encoder.transform(rows[encoder.columns])[:, :width].astype(np.float64)
    assert np.allclose(decoded, rows[["level", "flow", "on"]].to_numpy(dtype=np.float64), rtol=1e-6, atol=1e-5)
