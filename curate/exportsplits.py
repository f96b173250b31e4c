"""Which split (``train``, ``valid``, ``test``) each exported track goes to.

Trainers need a validation set beside the training one, and read it from one of two conventions:

* ``folder``: a ``valid/`` folder beside ``train/`` (MSST's ``valid_path``, demucs' ``wav`` datasets,
  open-unmix's ``aligned`` and ``trackfolder_fix``);
* ``musdb``: the validation tracks stay in ``train/`` and are told apart by MUSDB18's own list of
  validation track names (``musdb.DB(split="valid")``, open-unmix's ``musdb`` dataset, demucs' ``musdb``);
  only MUSDB18's list can be read this way.

Tracks come from a main manifest (each to its own subset) and optionally a validation and a test
manifest (every track of which goes to that split). Without a validation manifest, ``valid_tracks``
takes tracks out of the main manifest's ``train`` subset: a count (drawn with ``seed``) or names; by
default MUSDB18's validation tracks when the training tracks include them, else none.
"""

from __future__ import annotations

import numpy as np

from curate.common.errors import StemcurateError

SPLITS = ("train", "valid", "test")
VALID_LAYOUTS = ("folder", "musdb")
MUSDB18_VALIDATION = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)
"""MUSDB18's validation tracks (of its ``train`` subset), as its ``musdb`` reader lists them."""


def parse_valid_tracks(value) -> int | tuple[str, ...] | None:
    """``--valid-tracks``: None (the default), a count ``N`` (``"3"``) or track names (a list, or one
    string with names separated by ``|``; a name may hold commas; ``"2|"`` is the track named ``2``).
    :class:`StemcurateError` for a negative count or no name."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        count = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value.strip())
    else:
        names = value.split("|") if isinstance(value, str) else list(value)
        names = tuple(n for n in (str(n).strip() for n in names) if n)
        if not names:
            raise StemcurateError(f"--valid-tracks {value!r}: give a count or track names separated by '|'")
        return names
    if count < 0:
        raise StemcurateError(f"--valid-tracks {value!r}: a count of tracks must be 0 or more")
    return count


def assign_splits(
    train_tracks: list[str],
    *,
    valid_tracks: int | tuple[str, ...] | None = None,
    seed: int = 0,
    layout: str = "folder",
) -> tuple[list[str], str]:
    """The tracks of ``train_tracks`` (names in the main manifest's ``train`` subset) that go to
    validation, sorted, and how they were chosen (for ``export.json``). :class:`StemcurateError` for a
    named track that is not there, a count that leaves no training track, or, with ``layout="musdb"``,
    a validation set other than MUSDB18's list (no musdb reader could find it)."""
    have = sorted(set(train_tracks))
    if valid_tracks is None:
        chosen = sorted(set(have) & set(MUSDB18_VALIDATION))
        how = "MUSDB18's validation list" if chosen else "none"
        if chosen and len(chosen) == len(have):
            raise StemcurateError(
                "every training track is one of MUSDB18's validation tracks: pass --valid-tracks 0 to train on "
                "them, or --valid MANIFEST"
            )
    elif isinstance(valid_tracks, int):
        if str(valid_tracks) in set(have):
            raise StemcurateError(
                f"--valid-tracks {valid_tracks}: both a count and a track's name; for the track, give '{valid_tracks}|'"
            )
        if valid_tracks and valid_tracks >= len(have):
            raise StemcurateError(
                f"--valid-tracks {valid_tracks}: the manifest has {len(have)} training track(s); "
                "leave at least one for training"
            )
        picked = np.random.default_rng(seed).permutation(len(have))[:valid_tracks]
        chosen = sorted(have[i] for i in picked)
        how = f"{valid_tracks} drawn with seed {seed}" if valid_tracks else "none"
    else:
        missing = [n for n in valid_tracks if n not in set(have)]
        if missing:
            raise StemcurateError(f"--valid-tracks: no training track named {missing[0]!r} in the manifest")
        chosen = sorted(set(valid_tracks))
        if len(chosen) == len(have):
            raise StemcurateError("--valid-tracks names every training track; leave at least one for training")
        how = "named"
    if layout == "musdb":
        check_musdb_names(chosen)
    return chosen, how


def check_musdb_names(names) -> None:
    """``--valid-layout musdb``: :class:`StemcurateError` naming a validation track that is not on
    MUSDB18's list (musdb readers would train on it)."""
    other = sorted(set(names) - set(MUSDB18_VALIDATION))
    if other:
        raise StemcurateError(
            f"--valid-layout musdb: {other[0]!r} is not one of MUSDB18's validation tracks, which are the only ones "
            "musdb readers take as validation; use --valid-layout folder"
        )


def check_disjoint(splits: dict[str, set[str]]) -> None:
    """:class:`StemcurateError` naming a track that two splits share (a track validated or tested on
    while it is trained on)."""
    names = sorted(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = sorted(splits[a] & splits[b])
            if both:
                raise StemcurateError(f"track {both[0]!r} is in both the {a} and the {b} split; give each track once")


def set_splits(sources: dict, config, valid) -> tuple[dict[str, list[str]], str]:
    """Give every row of every source (``{"main"|"valid"|"test": curate.export source}``, each with
    ``every``, ``kept`` and ``rejected`` frames) its ``split``; the tracks of each split and how ``valid``
    was chosen. ``config``: the export's (``valid_tracks``, ``valid_layout``, ``seed``); ``valid``: the
    validation manifest or None."""
    main = sources["main"]
    if valid is not None:
        if config.valid_tracks is not None:
            raise StemcurateError("--valid and --valid-tracks: give one of them")
        names = sorted(set(sources["valid"].every["track"]))
        if config.valid_layout == "musdb":
            check_musdb_names(names)
        chosen, how = [], f"the manifest {valid}"
    else:
        train = main.every.loc[main.every["subset"] == "train", "track"]
        chosen, how = assign_splits(
            list(train), valid_tracks=config.valid_tracks, seed=config.seed, layout=config.valid_layout
        )
    moved = set(chosen)
    for role, src in sources.items():
        for frame in (src.every, src.kept, src.rejected):
            if role != "main":
                frame["split"] = role
            else:
                frame["split"] = [
                    "valid" if sub == "train" and t in moved else sub for sub, t in zip(frame["subset"], frame["track"])
                ]
    splits: dict[str, set[str]] = {}
    for src in sources.values():
        for split, rows in src.every.groupby("split"):
            splits.setdefault(split, set()).update(rows["track"])
    check_disjoint(splits)
    return {k: sorted(v) for k, v in sorted(splits.items())}, how
