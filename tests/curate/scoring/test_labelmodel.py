"""curate/scoring/labelmodel.py: fragments cut into units."""

import numpy as np
import pandas as pd
import pytest

from curate.scoring.labelmodel import split_units, unit_bounds


def test_units_are_shared_by_overlapping_fragments():
    frame = pd.DataFrame({"track": "t", "stem": "bass", "start": [0, 3, 6], "end": [6, 9, 12]})
    arrays = {"x": np.arange(12).reshape(3, 2, 2)}
    units, arr, unit_of = split_units(frame, arrays)
    assert units["start"].tolist() == [0, 3, 6, 9]
    assert unit_of.tolist() == [[0, 1], [1, 2], [2, 3]]
    np.testing.assert_array_equal(arr["x"], [[0, 1], [2, 3], [6, 7], [10, 11]])


def test_unit_bounds_halves_and_middle():
    b = np.array([[0, 100], [10, 111]])
    np.testing.assert_array_equal(unit_bounds(b, 2), [[[0, 50], [50, 100]], [[10, 60], [60, 111]]])
    np.testing.assert_array_equal(unit_bounds(b, 3), [[[0, 50], [25, 75], [50, 100]], [[10, 60], [35, 85], [60, 111]]])
    with pytest.raises(ValueError, match="2 or 3"):
        unit_bounds(b, 4)


@pytest.mark.parametrize("units, least", [(2, 0.5), (3, 0.75)])
def test_a_half_length_replacement_fills_some_unit(units, least):
    """Wherever a replacement half the fragment long sits, one unit holds at least ``least`` of it."""
    n = 1000
    u = unit_bounds(np.array([[0, n]]), units)[0]
    worst = min(max((min(e, s + n // 2) - max(a, s)) / (e - a) for a, e in u) for s in range(0, n // 2 + 1))
    assert worst == pytest.approx(least, abs=0.01)


def test_three_units_are_shared_by_overlapping_fragments():
    frame = pd.DataFrame({"track": "t", "stem": "bass", "start": [0, 4], "end": [8, 12]})
    arrays = {"x": np.arange(6).reshape(2, 3)}
    units, arr, unit_of = split_units(frame, arrays)
    assert units["start"].tolist() == [0, 2, 4, 6, 8]
    assert unit_of.tolist() == [[0, 1, 2], [2, 3, 4]]
    np.testing.assert_array_equal(arr["x"], [0, 1, 2, 4, 5])
