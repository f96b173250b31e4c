"""curate/scoring/labelmodel.py: fragments cut into units."""

import numpy as np
import pandas as pd

from curate.scoring.labelmodel import split_units


def test_units_are_shared_by_overlapping_fragments():
    frame = pd.DataFrame({"track": "t", "stem": "bass", "start": [0, 3, 6], "end": [6, 9, 12]})
    arrays = {"x": np.arange(12).reshape(3, 2, 2)}
    units, arr, unit_of = split_units(frame, arrays)
    assert units["start"].tolist() == [0, 3, 6, 9]
    assert unit_of.tolist() == [[0, 1], [1, 2], [2, 3]]
    np.testing.assert_array_equal(arr["x"], [[0, 1], [2, 3], [6, 7], [10, 11]])
