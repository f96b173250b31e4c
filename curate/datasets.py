"""``curate.datasets``: the import path the README first showed for :mod:`curate.data.datasets` (the same module)."""

import sys

from curate.data import datasets as _module

sys.modules[__name__] = _module
