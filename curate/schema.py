"""``curate.schema``: the import path the README first showed for :mod:`curate.data.schema` (the same module)."""

import sys

from curate.data import schema as _module

sys.modules[__name__] = _module
