"""curate/scoring/posterior.py: joint assignment per track window."""

import numpy as np
import pandas as pd

from curate.scoring.labelmodel import LabelModelConfig
from curate.scoring.posterior import joint_posterior

CLASSES = ["bass", "drums", "other", "vocals"]


def _window(stems, probas, track="t", start=0):
    frame = pd.DataFrame({"track": track, "start": start, "stem": stems})
    return frame, np.asarray(probas, dtype=float)


def test_joint_assignment_catches_a_swap():
    # bass and drums files swapped: each looks like the other's label
    frame, p = _window(
        ["bass", "drums", "other", "vocals"],
        [[0.1, 0.8, 0.05, 0.05], [0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05], [0.05, 0.05, 0.05, 0.85]],
    )
    post = joint_posterior(frame, p, CLASSES, config=LabelModelConfig(stem_pooling=0.0, prior_error=0.1))
    ok = post[np.arange(4), [0, 1, 2, 3]]
    assert ok[0] < 0.3 and ok[1] < 0.3 and ok[2] > 0.9 and ok[3] > 0.9
    assert [CLASSES[k] for k in post.argmax(axis=1)] == ["drums", "bass", "other", "vocals"]


def test_siblings_overrule_a_hesitant_classifier():
    # the vocals stem looks a bit more like "other" on its own, but the real "other" is its sibling
    frame, p = _window(
        ["bass", "drums", "other", "vocals"],
        [[0.9, 0.04, 0.03, 0.03], [0.03, 0.9, 0.04, 0.03], [0.03, 0.03, 0.9, 0.04], [0.03, 0.03, 0.5, 0.44]],
    )
    post = joint_posterior(frame, p, CLASSES, config=LabelModelConfig(stem_pooling=0.0, prior_error=0.1))
    assert post[3, CLASSES.index("vocals")] > 0.9
    alone = p[3, CLASSES.index("vocals")] / p[3].sum()
    assert alone < 0.5  # a per-fragment classifier alone would have flagged it


def test_replacement_by_another_class_is_flagged():
    # vocals file holds drums: two drum-like stems, no vocals-like one
    frame, p = _window(
        ["bass", "drums", "other", "vocals"],
        [[0.9, 0.04, 0.03, 0.03], [0.03, 0.9, 0.04, 0.03], [0.03, 0.03, 0.9, 0.04], [0.03, 0.9, 0.04, 0.03]],
    )
    post = joint_posterior(frame, p, CLASSES, config=LabelModelConfig(stem_pooling=0.0, prior_error=0.1))
    ok = post[np.arange(4), [0, 1, 2, 3]]
    assert ok[3] < 0.5 and ok[1] > 0.9 and ok[0] > 0.9 and ok[2] > 0.9
