"""Errors of the model package: bad input to it (a checkpoint, audio, a device), one line naming it.

``bsrnn`` imports nothing else of the project, so these are its own types; the command lines print
them as one line and exit with code 2, like :class:`curate.common.errors.StemcurateError`.
"""


class BSRNNError(ValueError):
    """Bad input to the model package; the message names the file, argument or device, on one line."""


class CheckpointError(BSRNNError):
    """A model file or model source that cannot give a model (missing, not loadable, another layout,
    other hyperparameters, NaN/inf weights, another target than its name says, ...)."""


class AudioError(BSRNNError):
    """Audio a :class:`~bsrnn.separator.Separator` cannot take (see there)."""


class DeviceError(BSRNNError):
    """A device this machine does not have (an unknown name, ``cuda`` without a GPU, ``cuda:3`` on a
    one-GPU machine)."""
