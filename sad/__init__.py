"""Source activity detection (SAD): find the salient fragments of a stem.

The default detector is the one of the BSRNN paper (Luo & Yu 2022, section IV-A) as the
public reference implementation computes it; see :mod:`sad.detect`.
"""

from sad.detect import SADConfig, detect, window_activity

__all__ = ["SADConfig", "detect", "window_activity"]
