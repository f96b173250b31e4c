"""Stand-ins for modules that benchmark peers import but that this machine cannot or need not install.

* ``torchaudio``: no build matches the pinned torch; ``load``, ``info`` and ``save`` on soundfile (what
  open-unmix's and demucs' dataset code call).
* ``wandb``: experiment logging (MSST's trainer), disabled.
* ``audiomentations``, ``pedalboard``: augmentation libraries (MSST's dataset), off in the benchmarks;
  any use raises.
* ``auraloss``, ``torch_log_wmse``: losses (MSST) the benchmarks do not select; any use raises.
* ``dora``: demucs' experiment manager, which its ``distrib`` module imports; any use raises (a
  single-process run reads demucs' own rank 0 / world size 1).

A stand-in is only used where the real module cannot be imported. :func:`stand_in_dir` writes them as
files for a subprocess's ``PYTHONPATH``; :func:`use_stand_ins` puts them in this process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_RAISING = '''"""Stand-in for {name} (benchmark only): importable, unusable."""


def __getattr__(attr):
    raise RuntimeError("{name} stand-in: " + attr + " is not available in this benchmark")
'''

SOURCES = {
    "torchaudio": '''"""Stand-in for torchaudio (benchmark only): load, info and save on soundfile."""

import types

import soundfile as sf
import torch


def load(path, frame_offset=0, num_frames=-1, **_):
    x, rate = sf.read(str(path), start=frame_offset, frames=num_frames, dtype="float32", always_2d=True)
    return torch.from_numpy(x.T.copy()), rate


def info(path, **_):
    i = sf.info(str(path))
    return types.SimpleNamespace(sample_rate=i.samplerate, num_frames=i.frames, num_channels=i.channels)


def save(path, src, sample_rate, encoding=None, **_):
    sf.write(str(path), src.detach().cpu().numpy().T, sample_rate, subtype="FLOAT" if encoding == "PCM_F" else None)


def get_audio_backend():
    return "soundfile"


def set_audio_backend(name):
    return None
''',
    "wandb": '''"""Stand-in for wandb (benchmark only): logging disabled."""


def init(*args, **kwargs):
    return None


def log(*args, **kwargs):
    return None


def login(*args, **kwargs):
    return None


def finish(*args, **kwargs):
    return None
''',
    "audiomentations": _RAISING.format(name="audiomentations"),
    "pedalboard": _RAISING.format(name="pedalboard"),
    "auraloss": _RAISING.format(name="auraloss"),
    "dora": '''"""Stand-in for dora (benchmark only): importable, unusable."""

import types


def _unusable(*args, **kwargs):
    raise RuntimeError("dora stand-in: not available in this benchmark")


distrib = types.SimpleNamespace(init=_unusable, rank=_unusable, world_size=_unusable)
''',
    "torch_log_wmse": '''"""Stand-in for torch_log_wmse (benchmark only): importable, unusable."""


class LogWMSE:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torch_log_wmse stand-in: LogWMSE is not available in this benchmark")
''',
}


def missing(names) -> list[str]:
    """The modules of ``names`` that cannot be imported here."""
    return [n for n in names if n not in sys.modules and importlib.util.find_spec(n) is None]


def stand_in_dir(folder: Path, names=tuple(SOURCES)) -> list[str]:
    """Write the stand-ins of the modules of ``names`` that are missing into ``folder``; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    out = missing(names)
    for n in out:
        (folder / f"{n}.py").write_text(SOURCES[n])
    return out


def use_stand_ins(folder: Path, names=tuple(SOURCES)) -> list[str]:
    """:func:`stand_in_dir` and put ``folder`` on this process's import path."""
    out = stand_in_dir(folder, names)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return out
