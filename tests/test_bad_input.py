"""Every command through the shared kinds of bad input.

The promise, in ``curate``, ``pipelines`` and the Python API alike: bad input gets a one-line error
naming the file and the problem and exit code 2, or a documented, reported handling; never a
traceback, never NaN written as a result, never an existing output lost. Three walks:

* **paths**: every path argument of every command given a missing path, an empty file or folder, a
  folder for a file (and a file for a folder), a file of garbage, and names with spaces, brackets
  and non-ASCII letters;
* **files in a dataset**: one track per kind of bad audio (not audio, zero-length, mono, six
  channels, NaN, inf, absurd level, another rate, another length, a WAV header never finalised),
  hidden files and folders, a file server's recycle bin and index folders, odd track names, through
  scan, filter, report, repair, corrupt, train, evaluate and separate;
* **outputs**: every output path pointed at an input, at another kind of file, or at an earlier
  output; what was there before is byte-for-byte unchanged whenever the command refuses.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from curate.cli import app as curate_app
from curate.data.schema import read_manifest, write_manifest
from pipelines.cli import app as pipelines_app
from tests.conftest import noise_stems, random_models, tiny_train, write_track

runner = CliRunner()
SR = 44100
ODD = "odd [live] ñame"  # spaces, brackets (rich markup) and a non-ASCII letter


def run(app, *args):
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    assert "Traceback" not in res.output, res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


def one_line_error(res, *names):
    """Exit 2 and exactly one ``error:`` line (``Error:`` for the option parser's usage errors) that
    names every one of ``names``."""
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(lines) == 1, res.output
    for n in names:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def tiny(manifest, out, export_dir, *extra) -> list:
    """``pipelines train`` arguments: the tiny model on ``manifest`` into the run folder ``out``, exporting
    to ``export_dir``, then ``extra``."""
    return ["train", "-m", manifest, "--model", "tiny", "-o", out, "--export-dir", export_dir, *extra]


def digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- a dataset with every kind of bad file

BAD_TRACKS = {
    # track: (file, the scan's check on it, readers that cannot use the track)
    "nonaudio": ("vocals.wav", "decode"),
    "zerolen": ("vocals.wav", "empty"),
    "mono": ("vocals.wav", "channels"),
    "sixch": ("other.wav", "channels"),
    "nan": ("vocals.wav", "non_finite"),
    "inf": ("bass.wav", "non_finite"),
    "absurd": ("other.wav", "level"),
    "rate": ("drums.wav", "sample_rate"),
    "length": ("drums.wav", "length"),
    "unfinalised": ("vocals.wav", "decode"),  # a header whose sizes were never written: it reads empty
    "halfsize": ("bass.wav", "decode"),  # a header whose data size covers half the audio: it reads cut
}
UNUSABLE = {"nonaudio", "zerolen", "nan", "inf", "absurd", "rate", "length", "unfinalised", "halfsize"}
"""Tracks with a file no reader can use (the others are read by documented rules: mono, first two channels)."""


def _bad_track(folder: Path, kind: str, rng) -> None:
    st = noise_stems(rng, 7.0)
    write_track(folder, st, subtype="FLOAT", with_mixture=kind != "length")
    if kind == "nonaudio":
        (folder / "vocals.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(64))
    elif kind == "zerolen":
        sf.write(folder / "vocals.wav", np.zeros((0, 2)), SR)
    elif kind == "mono":
        for name, x in {**st, "mixture": sum(st.values())}.items():
            sf.write(folder / f"{name}.wav", x[0], SR, subtype="FLOAT")
    elif kind == "sixch":
        sf.write(folder / "other.wav", np.tile(st["other"].T, (1, 3)), SR, subtype="FLOAT")
    elif kind in ("nan", "inf", "absurd"):
        stem = {"nan": "vocals", "inf": "bass", "absurd": "other"}[kind]
        x = st[stem].T.copy()
        x[2 * SR : 2 * SR + 2205] = {"nan": np.nan, "inf": np.inf, "absurd": 1e29}[kind]
        sf.write(folder / f"{stem}.wav", x, SR, subtype="FLOAT")
    elif kind == "rate":
        sf.write(folder / "drums.wav", st["drums"].T[::2], SR // 2, subtype="FLOAT")
    elif kind == "length":
        sf.write(folder / "drums.wav", np.concatenate([st["drums"].T, st["drums"].T[: 2 * SR]]), SR, subtype="FLOAT")
    elif kind == "unfinalised":
        unfinalise(folder / "vocals.wav")
    elif kind == "halfsize":
        unfinalise(folder / "bass.wav", share=0.5)


def unfinalise(path: Path, share: float = 0.0) -> None:
    """Set the data size of a WAV's header to ``share`` of the audio it holds (and the RIFF size to match), as a
    recorder that stopped before finalising leaves it."""
    b = bytearray(path.read_bytes())
    at = b.index(b"data")
    size = int(share * int.from_bytes(b[at + 4 : at + 8], "little")) // 8 * 8
    b[4:8], b[at + 4 : at + 8] = (at + size).to_bytes(4, "little"), size.to_bytes(4, "little")
    path.write_bytes(bytes(b))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """``data/{train,test}``: two good tracks (one with an odd name), one track per bad kind, hidden
    files and a hidden track; tiny random models; a scored scan of the train subset."""
    base = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    for subset in ("train", "test"):
        sub = base / "data" / subset
        write_track(sub / "good", noise_stems(rng, 7.0), subtype="FLOAT")
        write_track(sub / ODD, noise_stems(rng, 7.0), subtype="FLOAT")
        for kind in BAD_TRACKS:
            _bad_track(sub / kind, kind, rng)
        (sub / "good" / "._vocals.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (sub / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        write_track(sub / ".hidden track", noise_stems(rng, 7.0))
        write_track(sub / "#recycle" / "deleted song", noise_stems(rng, 2.0))  # a NAS share's recycle bin
        write_track(sub / "@eaDir", noise_stems(rng, 2.0))  # its index folder, here holding stems
        (sub / "good" / "@eaDir").mkdir()
        (sub / "good" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    random_models(base / "models")
    res = run(
        curate_app,
        "scan",
        base / "data",
        "--embedder",
        "features",
        "--no-reference-pool",
        "-o",
        base / "scored.parquet",
    )
    assert res.exit_code == 0, res.output
    return base


# ---------------------------------------------------------------- paths


def _paths(tmp: Path, expects: str, suffix: str) -> dict[str, Path]:
    """One bad path per kind for an argument that ``expects`` a file (with ``suffix``) or a folder."""
    tmp.mkdir(parents=True, exist_ok=True)
    out = {"missing": tmp / f"no such {ODD}{suffix if expects == 'file' else ''}"}
    if expects == "file":
        (tmp / f"empty {ODD}{suffix}").write_bytes(b"")
        (tmp / f"garbage {ODD}{suffix}").write_bytes(np.random.default_rng(1).bytes(300))
        (tmp / f"folder {ODD}{suffix}").mkdir()
        out.update(
            empty=tmp / f"empty {ODD}{suffix}",
            garbage=tmp / f"garbage {ODD}{suffix}",
            wrong_type=tmp / f"folder {ODD}{suffix}",
        )
    else:
        (tmp / f"empty {ODD}").mkdir()
        (tmp / f"garbage {ODD}").mkdir()
        (tmp / f"garbage {ODD}" / "notes.txt").write_text("not a dataset, a model or a run")
        (tmp / f"file {ODD}").write_bytes(b"a file, not a folder")
        out.update(empty=tmp / f"empty {ODD}", garbage=tmp / f"garbage {ODD}", wrong_type=tmp / f"file {ODD}")
    return out


# (app, argument builder given the world and the bad path, what the argument expects, a file suffix)
PATH_ARGS = {
    "curate scan DATA": (curate_app, lambda w, p, o: ["scan", p, "--no-score", "-o", o / "m.parquet"], "folder", ""),
    "curate scan --reference": (
        curate_app,
        lambda w, p, o: ["scan", w / "data", "--embedder", "features", "--reference", p, "-o", o / "m.parquet"],
        "folder",
        "",
    ),
    "curate scan --separator": (
        curate_app,
        lambda w, p, o: ["scan", w / "data", "--embedder", "features", "--separator", p, "-o", o / "m.parquet"],
        "model",
        ".ckpt",
    ),
    "curate scan --musicnn-weights": (
        curate_app,
        lambda w, p, o: ["scan", w / "data", "--musicnn-weights", p, "-o", o / "m.parquet"],
        "file",
        ".safetensors",
    ),
    "curate filter MANIFEST": (
        curate_app,
        lambda w, p, o: ["filter", p, "-o", o / "c.parquet", "--rejected", o / "r.parquet"],
        "file",
        ".parquet",
    ),
    "curate report MANIFEST": (curate_app, lambda w, p, o: ["report", p, "-o", o / "r.html"], "file", ".parquet"),
    "curate report --data": (
        curate_app,
        lambda w, p, o: ["report", w / "scored.parquet", "--data", p, "-o", o / "r.html"],
        "folder",
        "",
    ),
    "curate repair MANIFEST": (curate_app, lambda w, p, o: ["repair", p, o / "repaired"], "file", ".parquet"),
    "curate corrupt SRC": (curate_app, lambda w, p, o: ["corrupt", p, o / "noisy"], "folder", ""),
    "pipelines train --manifest": (
        pipelines_app,
        lambda w, p, o: ["train", "-m", p, "--model", "tiny", "-o", o / "run", "--export-dir", o / "e"],
        "file",
        ".parquet",
    ),
    "pipelines train --init-from": (
        pipelines_app,
        lambda w, p, o: [
            "train",
            "-m",
            w / "scored.parquet",
            "--init-from",
            p,
            "-o",
            o / "run",
            "--export-dir",
            o / "e",
        ],
        "model",
        ".ckpt",
    ),
    "pipelines train --model": (
        pipelines_app,
        lambda w, p, o: ["train", "-m", w / "scored.parquet", "--model", p, "-o", o / "run", "--export-dir", o / "e"],
        "file",
        ".yaml",
    ),
    "pipelines train --resume": (pipelines_app, lambda w, p, o: ["train", "--resume", "-o", p], "folder", ""),
    "pipelines evaluate MODEL": (
        pipelines_app,
        lambda w, p, o: ["evaluate", p, "--data", w / "data", "-o", o / "res.parquet"],
        "model",
        ".ckpt",
    ),
    "pipelines evaluate --data": (
        pipelines_app,
        lambda w, p, o: ["evaluate", w / "models", "--data", p, "-o", o / "res.parquet"],
        "folder",
        "",
    ),
    "pipelines separate --input": (
        pipelines_app,
        lambda w, p, o: ["separate", "-i", p, "-o", o / "sep", "-c", w / "models"],
        "input",
        ".wav",
    ),
    "pipelines separate --checkpoint": (
        pipelines_app,
        lambda w, p, o: ["separate", "-i", w / "data" / "test" / "good" / "mixture.wav", "-o", o / "sep", "-c", p],
        "model",
        ".ckpt",
    ),
    "pipelines report RUN": (pipelines_app, lambda w, p, o: ["report", p, "-o", o / "run.html"], "folder", ""),
}


@pytest.mark.parametrize(
    "arg, kind",
    [
        (a, k)
        for a, (_, _, expects, _) in PATH_ARGS.items()
        for k in ("missing", "empty", "garbage", "wrong_type")
        if not (expects in ("model", "input") and k == "wrong_type")
    ],
)  # those may be either
def test_every_path_argument_refuses_bad_paths_in_one_line(world, tmp_path, arg, kind):
    app, build, expects, suffix = PATH_ARGS[arg]
    for form in ("file", "folder") if expects in ("model", "input") else (expects,):
        bad = _paths(tmp_path / form, form, suffix)[kind]
        before = sorted(p.name for p in world.iterdir())
        out = tmp_path / f"out-{form}"
        res = run(app, *build(world, bad, out))
        one_line_error(res, bad)
        assert sorted(p.name for p in world.iterdir()) == before  # nothing written beside the inputs
        assert not out.exists() or not any(p.is_file() for p in out.rglob("*")), "an output was written"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_files_are_one_line_errors(world, tmp_path):
    manifest = tmp_path / "m.parquet"
    manifest.write_bytes((world / "scored.parquet").read_bytes())
    manifest.chmod(0)
    try:
        one_line_error(
            run(curate_app, "filter", manifest, "-o", tmp_path / "c.parquet", "--rejected", tmp_path / "r.parquet"),
            manifest,
        )
    finally:
        manifest.chmod(0o644)


# ---------------------------------------------------------------- bad files in a dataset


def test_scan_reports_every_bad_file_by_its_real_path_and_ignores_hidden_ones(world):
    problems = pd.read_parquet(world / "scored.problems.parquet")
    manifest = pd.read_parquet(world / "scored.parquet")
    for track, (file, check) in BAD_TRACKS.items():
        rows = problems[(problems["track"] == track) & (problems["check"] == check)]
        assert len(rows), (track, check, problems[problems["track"] == track])
        assert any(p and p.endswith(f"{track}/{file}") and (world / "data" / p).is_file() for p in rows["path"]), rows
    assert not any(".hidden" in t or t.startswith("._") for t in manifest["track"])
    unfinalised = problems[problems["track"] == "unfinalised"].set_index("check")["detail"]
    assert unfinalised["decode"].startswith("header declares 0 samples but 308700 follow it (7.00 s)"), unfinalised
    assert unfinalised["residual"] == "not measured: train/unfinalised/vocals.wav could not be used (see above)"
    assert not problems["path"].dropna().str.contains("/._|.DS_Store|.hidden|#recycle|@eaDir|Thumbs", regex=True).any()
    assert not manifest["track"].str.contains("#recycle|@eaDir", regex=True).any()
    assert ODD in set(manifest["track"]) and "good" in set(manifest["track"])
    # unusable files are skipped; mono and six-channel files are read by the documented rule
    for track in ("nan", "inf", "absurd", "nonaudio", "zerolen"):
        file = BAD_TRACKS[track][0]
        assert not ((manifest["track"] == track) & (manifest["stem"] == file[:-4])).any(), track
    assert set(manifest.loc[manifest["track"] == "mono", "channels"]) == {1}
    six = manifest[manifest["track"] == "sixch"]
    assert set(six.loc[six["stem"] == "other", "channels"]) == {6} and set(
        six.loc[six["stem"] != "other", "channels"]
    ) == {2}  # as in the file
    # nothing non-finite was written as a result
    for col in ("quality", "label_score", "bleed_db", "rms_db"):
        assert np.isfinite(manifest[col].astype(float)).all(), col


def test_scan_prints_odd_names_literally_and_strict_exits_2(tmp_path):
    rng = np.random.default_rng(2)
    write_track(tmp_path / "data" / "train" / ODD, noise_stems(rng, 7.0))
    write_track(tmp_path / "data" / "train" / "good", noise_stems(rng, 7.0))
    (tmp_path / "data" / "train" / ODD / "bass.wav").write_bytes(b"not audio")
    res = run(curate_app, "scan", tmp_path / "data", "--no-score", "--strict", "-o", tmp_path / "m.parquet")
    assert res.exit_code == 2 and "problem(s) found and --strict" in res.output
    assert f"{ODD}/bass.wav" in res.output and f"│ {ODD}" in res.output, res.output


def test_filter_and_report_on_a_dataset_with_bad_files(world, tmp_path):
    res = run(
        curate_app,
        "filter",
        world / "scored.parquet",
        "-o",
        tmp_path / "c.parquet",
        "--rejected",
        tmp_path / "r.parquet",
        "-t",
        "0.05",
    )
    assert res.exit_code == 0, res.output
    res = run(curate_app, "report", world / "scored.parquet", "-o", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    import re

    html = re.sub(r"data:[^\"]+", "", (tmp_path / "r.html").read_text())  # embedded audio and images
    assert "odd [live] ñame" in html and "NaN" not in html and "nan dB" not in html


def test_repair_copies_tracks_it_cannot_read_and_says_why(world, tmp_path):
    dst = tmp_path / "repaired"
    res = run(curate_app, "repair", world / "scored.parquet", dst)
    assert res.exit_code == 0, res.output
    log = pd.read_parquet(dst / "repairs.parquet")
    not_repaired = log[log["action"] == "not repaired"]
    assert set(not_repaired["track"]) == UNUSABLE, not_repaired
    for track in UNUSABLE:  # copied byte for byte, and the problem named with its file
        file = BAD_TRACKS[track][0]
        detail = not_repaired.loc[not_repaired["track"] == track, "detail"].iloc[0]
        assert file in detail or f"track '{track}'" in detail, detail
        assert digest(dst / "train" / track / file) == digest(world / "data" / "train" / track / file)
    for track in ("good", ODD, "mono", "sixch"):  # repaired: finite, at most two channels, the track's length
        for stem in ("vocals", "bass", "drums", "other", "mixture"):
            x, sr = sf.read(dst / "train" / track / f"{stem}.wav", always_2d=True)
            assert sr == SR and x.shape == (7 * SR, 1 if track == "mono" else 2) and np.isfinite(x).all(), (track, stem)
    assert not (dst / "train" / ".hidden track").exists()


def test_corrupt_refuses_a_bad_file_and_leaves_nothing(world, tmp_path):
    res = run(curate_app, "corrupt", world / "data", tmp_path / "noisy")
    line = one_line_error(res)
    assert any(f"{t}/{BAD_TRACKS[t][0]}" in line or f"track '{t}'" in line for t in UNUSABLE), line
    assert not (tmp_path / "noisy").exists() and not any(p.name.startswith(".noisy") for p in tmp_path.iterdir())


def test_train_on_the_kept_fragments_of_mono_and_six_channel_files(world, tmp_path):
    args = tiny_train(world / "scored.parquet", "--target", "bass", out=tmp_path / "run", export_dir=tmp_path / "e")
    res = run(pipelines_app, *args)
    assert res.exit_code == 0, res.output
    from bsrnn.checkpoint import read_checkpoint

    _, state = read_checkpoint(tmp_path / "e" / "bass" / "bass.ckpt")
    assert all(np.isfinite(v.numpy()).all() for v in state.values())


def test_evaluate_leaves_out_the_tracks_it_cannot_score_and_names_them(world, tmp_path):
    out = tmp_path / "res.parquet"
    res = run(pipelines_app, "evaluate", world / "models", "--data", world / "data", "-o", out)
    assert res.exit_code == 0, res.output
    r = pd.read_parquet(out)
    assert set(r["track"]) == {"good", ODD, *BAD_TRACKS}  # hidden tracks are not tracks
    left = set(r.loc[r["left_out"].notna(), "track"])
    # evaluate reads the targets (vocals, bass) and the mixture: a bad other.wav (absurd) or drums.wav
    # (rate) beside a good mixture does not stop it; without a mixture (length) every stem is read
    assert left == UNUSABLE - {"absurd", "rate"}, left
    scored = r[r["left_out"].isna()]
    assert np.isfinite(scored[["usdr", "csdr"]].to_numpy()).all()
    text = res.output.replace("\n", " ")
    for track in left:
        assert track in text, track
    log = (tmp_path / "res.log").read_text()
    assert "left out" in log and "left out: nan" not in log and "left out: None" not in log


def test_separate_skips_unusable_files_and_separates_the_rest(world, tmp_path):
    songs = tmp_path / "songs"  # one song per kind of bad file, an odd name, hidden files and folders
    for track in ("nonaudio", "zerolen", "nan", "inf", "absurd", "mono", "sixch", "unfinalised", "halfsize"):
        (songs / track).mkdir(parents=True)
        (songs / track / BAD_TRACKS[track][0]).write_bytes(
            (world / "data" / "test" / track / BAD_TRACKS[track][0]).read_bytes()
        )
    (songs / f"{ODD}.wav").write_bytes((world / "data" / "test" / ODD / "mixture.wav").read_bytes())
    (songs / "._x.wav").write_bytes(b"\x00\x05\x16\x07")
    whole = (world / "data" / "test" / "good" / "mixture.wav").read_bytes()
    (songs / "cut.wav").write_bytes(whole[: len(whole) // 2])  # its header declares twice what it holds
    (songs / ".hidden").mkdir()
    (songs / ".hidden" / "y.wav").write_bytes((world / "data" / "test" / "good" / "vocals.wav").read_bytes())
    out = tmp_path / "sep"
    res = run(pipelines_app, "separate", "-i", songs, "-o", out, "-c", world / "models" / "vocals")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    for track in ("nonaudio", "zerolen", "nan", "inf", "absurd", "unfinalised", "halfsize"):  # skipped, named
        path = str(songs / track / BAD_TRACKS[track][0])
        assert any(line.startswith(f"skipped {path}: ") for line in lines), (track, res.output)
    assert f"{songs / 'sixch' / 'other.wav'}: 6 channels, the first 2 separated" in lines
    assert any(ln.startswith(f"skipped {songs / 'cut.wav'}: truncated: header declares ") for ln in lines), lines
    assert f"skipped {songs / 'unfinalised' / 'vocals.wav'}: header declares 0 samples but 308700 follow it" in (
        res.output
    )
    assert f"skipped {songs / 'halfsize' / 'bass.wav'}: header declares 154350 samples but 308700 follow it" in (
        res.output
    )
    assert "3 of 11 files separated into vocals; 3 files in" in res.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert written == ["mono/vocals/vocals.wav", f"{ODD}/vocals.wav", "sixch/other/vocals.wav"], written
    for name, channels in zip(written, (1, 2, 2)):
        x, sr = sf.read(out / name, always_2d=True)
        assert sr == SR and x.shape == (7 * SR, channels) and np.isfinite(x).all(), name


# ---------------------------------------------------------------- output collisions


def test_outputs_never_replace_an_input_or_another_kind_of_file(world, tmp_path):
    manifest = tmp_path / "m.parquet"
    manifest.write_bytes((world / "scored.parquet").read_bytes())
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    page = tmp_path / "page.html"
    page.write_text("<html>my own page</html>")
    keep = {p: digest(p) for p in (manifest, notes, page)}
    refused = [
        (curate_app, ["scan", world / "data", "--no-score", "-o", notes], notes),
        (curate_app, ["scan", world / "data", "--no-score", "-o", page], page),
        (curate_app, ["filter", manifest, "-o", manifest], manifest),
        (curate_app, ["filter", manifest, "-o", tmp_path / "c.parquet", "--rejected", notes], notes),
        (curate_app, ["report", manifest, "-o", manifest], manifest),
        (curate_app, ["report", manifest, "-o", page], page),
        (curate_app, ["synth", world / "data", "-n", "1", "-s", "1"], world / "data"),
        (curate_app, ["corrupt", world / "data", world / "data"], world / "data"),
        (curate_app, ["repair", manifest, world / "data"], world / "data"),
        (pipelines_app, ["evaluate", world / "models", "--data", world / "data", "-o", manifest], manifest),
        (pipelines_app, ["evaluate", world / "models", "--data", world / "data", "-o", notes], notes),
        (
            pipelines_app,
            ["separate", "-i", world / "data" / "test" / "good" / "mixture.wav", "-o", notes, "-c", world / "models"],
            notes,
        ),
        # an exported model of unknown origin is not replaced by a new run's
        (
            pipelines_app,
            tiny(manifest, tmp_path / "run", world / "models", "--target", "vocals", "--max-steps", "1"),
            world / "models" / "vocals" / "vocals.ckpt",
        ),
    ]
    before = {p: digest(p) for p in (world / "models").rglob("*.ckpt")}
    for app, args, path in refused:
        one_line_error(run(app, *args), path)
    assert {p: digest(p) for p in keep} == keep
    assert {p: digest(p) for p in (world / "models").rglob("*.ckpt")} == before
    assert not (world / "data" / "synth.json").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_earlier_outputs_of_the_same_kind_are_replaced(world, tmp_path):
    """The positive side of the rule: a re-scan, a re-filter, a re-report, a re-evaluation."""
    for _ in range(2):
        assert run(curate_app, "scan", world / "data", "--no-score", "-o", tmp_path / "m.parquet").exit_code == 0
        assert (
            run(
                curate_app,
                "filter",
                world / "scored.parquet",
                "-o",
                tmp_path / "c.parquet",
                "--rejected",
                tmp_path / "r.parquet",
                "-t",
                "0.05",
            ).exit_code
            == 0
        )
        assert run(curate_app, "report", world / "scored.parquet", "-o", tmp_path / "r.html").exit_code == 0
        res = run(
            pipelines_app,
            "evaluate",
            world / "models",
            "--data",
            world / "data",
            "-n",
            "1",
            "-o",
            tmp_path / "results.parquet",
        )
        assert res.exit_code == 0, res.output
    assert (tmp_path / "test.log").read_text().startswith("# stemcurate evaluation log")


def test_separate_into_a_folder_inside_its_input_does_not_separate_its_own_results(world, tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    (songs / "a.wav").write_bytes((world / "data" / "test" / "good" / "mixture.wav").read_bytes())
    (songs / ".b.wav").write_bytes(
        (world / "data" / "test" / "good" / "mixture.wav").read_bytes()
    )  # hidden: not an input
    for _ in range(2):
        res = run(pipelines_app, "separate", "-i", songs, "-o", songs / "separated", "-c", world / "models")
        assert res.exit_code == 0 and "1 of 1 files separated" in res.output, res.output
    assert sorted(p.relative_to(songs).as_posix() for p in songs.rglob("*.wav")) == [
        ".b.wav",
        "a.wav",
        "separated/a/bass.wav",
        "separated/a/vocals.wav",
    ]


def test_ctrl_c_while_a_command_loads_is_one_line_and_exit_130(monkeypatch, capsys):
    import importlib

    from curate import entry
    from pipelines import entry as pipelines_entry

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    for command in (entry.curate, pipelines_entry.pipelines):
        with pytest.raises(SystemExit) as exc:
            command()
        assert exc.value.code == 130
        assert capsys.readouterr().err.strip() == "interrupted while starting; nothing was done"
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # a second press cannot kill the exit half-way


@pytest.mark.parametrize(
    "argv, names",
    [
        (["curate", "scan", "--nope", "x"], ["curate scan", "--nope"]),
        (["curate", "no-such-command"], ["curate", "no-such-command"]),
        (["pipelines", "train", "-m", "x.parquet", "--max-steps", "0"], ["pipelines train", "--max-steps"]),
        (["pipelines", "train", "-m", "x.parquet", "--seed", "many"], ["pipelines train", "--seed"]),
        (["pipelines", "separate"], ["pipelines separate", "--input"]),
        (["curate", "filter", "a.parquet", "b.parquet", "c.parquet"], ["curate filter", "c.parquet"]),
    ],
)
def test_the_option_parsers_usage_errors_are_one_line_and_exit_2(monkeypatch, capsys, argv, names):
    """What the user types: the console entry points. An unknown option or command, a value out of range or of
    the wrong type, a missing option, an extra argument: one ``error:`` line naming the command and the
    problem (click's three-line usage block otherwise)."""
    from curate import entry
    from pipelines import entry as pipelines_entry

    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exc:
        (entry.curate if argv[0] == "curate" else pipelines_entry.pipelines)()
    assert exc.value.code == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    assert "Usage" not in out.err and out.out == ""
    for n in names:
        assert n in lines[0], (n, lines[0])


def test_a_target_the_manifest_lacks_is_said_before_the_band_layout_it_lacks(world, tmp_path):
    """``--target piano`` on a manifest without piano: the manifest's stems are the problem, not the missing
    built-in band layout; a manifest that holds the stem is told about the band layout instead."""

    scored = world / "scored.parquet"
    line = one_line_error(run(pipelines_app, *tiny(scored, tmp_path / "run", tmp_path / "e", "--target", "piano")))
    assert str(scored) in line and "no fragments of target 'piano'" in line and "stems: " in line, line
    from curate.data.schema import read_manifest, write_manifest

    m = read_manifest(scored)
    frame = m.frame.copy()
    frame.loc[frame["stem"] == "other", "stem"] = "piano"
    piano = write_manifest(frame, tmp_path / "piano.parquet", root=m.root, meta=m.meta)
    line = one_line_error(run(pipelines_app, *tiny(piano, tmp_path / "run", tmp_path / "e", "--target", "piano")))
    assert "band spec" in line, line
    missing = tmp_path / "none.parquet"  # a manifest that is not there is said as such, not the band layout
    line = one_line_error(run(pipelines_app, *tiny(missing, tmp_path / "run", tmp_path / "e", "--target", "piano")))
    assert str(missing) in line and "not found" in line, line
    for empty in ("", "  "):  # an empty target is no target, not the default vocals
        one_line_error(
            run(pipelines_app, *tiny(scored, tmp_path / "run", tmp_path / "e", "--target", empty)), "--target"
        )
    assert not (tmp_path / "run").exists() and not (tmp_path / "e").exists()


def test_help_and_no_arguments_print_help(monkeypatch, capsys):
    from curate import entry

    for argv, code in ((["curate", "--help"], 0), (["curate"], 2)):
        monkeypatch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as exc:
            entry.curate()
        assert exc.value.code == code
        out = capsys.readouterr()
        assert "Usage:" in out.out + out.err and "COMMAND" in out.out + out.err and "scan" in out.out + out.err


def test_outputs_in_a_folder_that_takes_no_files_are_one_line_errors(world, tmp_path):
    if not Path("/proc").is_dir():
        pytest.skip("no /proc")
    res = run(curate_app, "scan", world / "data", "--no-score", "-o", "/proc/stemcurate.parquet")
    one_line_error(res, "/proc/stemcurate.parquet")
    one_line_error(run(curate_app, "repair", world / "scored.parquet", "/proc/repaired"), "/proc/")
    one_line_error(
        run(
            pipelines_app,
            "separate",
            "-i",
            world / "data" / "test" / "good" / "mixture.wav",
            "-o",
            "/proc/sep",
            "-c",
            world / "models",
        ),
        "/proc/sep",
    )


def test_a_dataset_without_some_standard_stems_is_scanned_for_those_it_has(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(2):
        write_track(tmp_path / "data" / "train" / f"t{i}", noise_stems(rng, 7.0, names=("vocals", "guitar")))
    res = run(curate_app, "scan", tmp_path / "data", "--no-score", "-o", tmp_path / "m.parquet")
    assert res.exit_code == 0, res.output
    assert set(pd.read_parquet(tmp_path / "m.parquet")["stem"]) == {"vocals"}
    one_line_error(
        run(curate_app, "scan", tmp_path / "data", "--no-score", "--stems", "bass", "-o", tmp_path / "m2.parquet"),
        "unknown stem 'bass'",
    )


NUMBERS = [  # (app, arguments before the number, option): every float option of every command
    (curate_app, ["synth", "{tmp}/s", "-n", "1"], "--seconds"),
    (curate_app, ["scan", "{data}", "--no-score", "-o", "{tmp}/m.parquet"], "--sad-window"),
    (curate_app, ["scan", "{data}", "--no-score", "-o", "{tmp}/m.parquet"], "--sad-hop"),
    (curate_app, ["scan", "{data}", "--no-score", "-o", "{tmp}/m.parquet"], "--silence-db"),
    (curate_app, ["scan", "{data}", "--no-score", "-o", "{tmp}/m.parquet"], "--max-residual-db"),
    (curate_app, ["filter", "{scored}", "-o", "{tmp}/c.parquet", "--rejected", "{tmp}/r.parquet"], "--threshold"),
    (curate_app, ["filter", "{scored}", "-o", "{tmp}/c.parquet", "--rejected", "{tmp}/r.parquet"], "--bleed-db"),
    (curate_app, ["corrupt", "{data}", "{tmp}/n"], "--mislabel-rate"),
    (curate_app, ["repair", "{scored}", "{tmp}/r"], "--leak-min-db"),
    (curate_app, ["report", "{scored}", "-o", "{tmp}/r.html"], "--threshold"),
    (
        pipelines_app,
        ["train", "-m", "{scored}", "--model", "tiny", "-o", "{tmp}/run", "--export-dir", "{tmp}/e"],
        "--truncate-quantile",
    ),
    (
        pipelines_app,
        ["train", "-m", "{scored}", "--model", "tiny", "-o", "{tmp}/run", "--export-dir", "{tmp}/e", "--set"],
        "lr=",
    ),
    (pipelines_app, ["evaluate", "{models}", "--data", "{data}", "-o", "{tmp}/r.parquet"], "--hop"),
    (pipelines_app, ["separate", "-i", "{data}/test/good/mixture.wav", "-o", "{tmp}/sep", "-c", "{models}"], "--frame"),
]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf_options_are_one_line_errors(world, tmp_path, value):
    for app, args, option in NUMBERS:
        fill = {"tmp": tmp_path, "data": world / "data", "scored": world / "scored.parquet", "models": world / "models"}
        argv = [a.format(**fill) for a in args] + ([option + value] if option.endswith("=") else [option, value])
        line = one_line_error(run(app, *argv), option.rstrip("="))
        assert "finite" in line or "Invalid value" in line, line  # ours, or the parser's range check
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "an output was written"


# ---------------------------------------------------------------- second review: outputs, numbers, devices


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_separate_never_replaces_files_it_did_not_write(world, tmp_path):
    data = _copy(world / "data", tmp_path / "data")
    keep = {p: digest(p) for p in (data / "test" / "good").iterdir() if p.is_file()}
    mix = data / "test" / "good" / "mixture.wav"
    song = tmp_path / "good.wav"
    song.write_bytes(mix.read_bytes())
    # OUT/<song> holds the user's files: they are not separate's to replace
    mine = tmp_path / "mine" / "good"
    mine.mkdir(parents=True)
    (mine / "vocals.wav").write_bytes(mix.read_bytes())
    one_line_error(run(pipelines_app, "separate", "-i", song, "-o", mine.parent, "-c", world / "models"), mine)
    assert sorted(p.name for p in mine.iterdir()) == ["vocals.wav"]
    # a dataset, one of its subset folders, a training run or a saved_models folder is no output folder at all
    one_line_error(
        run(pipelines_app, "separate", "-i", song, "-o", data / "test", "-c", world / "models"),
        data / "test",
        "dataset",
    )
    one_line_error(run(pipelines_app, "separate", "-i", song, "-o", data, "-c", world / "models"), data, "dataset")
    one_line_error(
        run(pipelines_app, "separate", "-i", song, "-o", world / "models", "-c", world / "models"),
        world / "models",
        "exported models",
    )
    assert {p: digest(p) for p in keep} == keep and not (data / "test" / "good" / "bass.wav.tmp").exists()
    one_line_error(
        run(pipelines_app, "separate", "-i", data / "test", "-o", data / "test", "-c", world / "models"),
        "is the input folder",
    )
    # an earlier separation (its marker) is written again; an empty folder is taken
    (tmp_path / "sep" / "good").mkdir(parents=True)
    for _ in range(2):
        assert run(pipelines_app, "separate", "-i", song, "-o", tmp_path / "sep", "-c", world / "models").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "sep" / "good").iterdir()) == [
        ".stemcurate-separation",
        "bass.wav",
        "vocals.wav",
    ]


def test_separate_checks_format_options_before_loading_models(world, tmp_path):
    mix = world / "data" / "test" / "good" / "mixture.wav"
    missing_model = tmp_path / "no model.ckpt"  # the option error must come first: no model is read
    for args, option in (
        (["--format", "mp3", "--bits", "24"], "--bits 24"),
        (["--bits", "8"], "--bits 8"),
        (["--format", "flac", "--bits", "float"], "--bits float"),
        (["--format", "ogg"], "--format ogg"),
        (["--clip-mode", "fold"], "--clip-mode fold"),
    ):
        one_line_error(
            run(pipelines_app, "separate", "-i", mix, "-o", tmp_path / "sep", "-c", missing_model, *args), option
        )
    assert not (tmp_path / "sep").exists()


def test_separate_names_a_text_file_with_an_audio_extension(world, tmp_path):
    text = tmp_path / "notes.mp3"
    text.write_text("not audio at all " * 20)
    res = run(pipelines_app, "separate", "-i", text, "-o", tmp_path / "sep", "-c", world / "models")
    assert res.exit_code == 2 and f"skipped {text}: " in res.output and "unknown or corrupt format" in res.output, (
        res.output
    )
    assert "does not exist" not in res.output


def test_model_folders_must_hold_what_their_names_say(world, tmp_path):
    mix = world / "data" / "test" / "good" / "mixture.wav"
    (tmp_path / "a" / "vocals" / "vocals.ckpt").mkdir(parents=True)
    one_line_error(
        run(pipelines_app, "separate", "-i", mix, "-o", tmp_path / "s1", "-c", tmp_path / "a"),
        "vocals.ckpt: is a folder",
    )
    (tmp_path / "b" / "vocals").mkdir(parents=True)
    (tmp_path / "b" / "vocals" / "vocals.ckpt").write_bytes((world / "models" / "bass" / "bass.ckpt").read_bytes())
    one_line_error(
        run(pipelines_app, "separate", "-i", mix, "-o", tmp_path / "s2", "-c", tmp_path / "b"),
        "holds a 'bass' model but is named 'vocals'",
    )
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists()


def test_evaluate_refuses_a_results_path_that_is_its_own_log(world, tmp_path):
    one_line_error(
        run(pipelines_app, "evaluate", world / "models", "--data", world / "data", "-o", tmp_path / "x.log"),
        tmp_path / "x.log",
    )
    assert not (tmp_path / "x.log").exists()
    for folder in (tmp_path, Path(".")):  # a folder, the working one included, is not a results file
        one_line_error(
            run(pipelines_app, "evaluate", world / "models", "--data", world / "data", "-o", folder),
            "is a folder; give the results file",
        )


def test_scan_checks_txt_dir_before_scanning(world, tmp_path):
    for bad in ([Path("/proc/stemcurate-lists")] if Path("/proc").is_dir() else []) + [world / "scored.parquet"]:
        one_line_error(
            run(curate_app, "scan", world / "data", "--no-score", "-o", tmp_path / "m.parquet", "--txt-dir", bad), bad
        )
    assert not (tmp_path / "m.parquet").exists()
    res = run(
        curate_app, "scan", world / "data", "--no-score", "-o", tmp_path / "m.parquet", "--txt-dir", tmp_path / "lists"
    )
    assert res.exit_code == 0 and (tmp_path / "lists" / "vocals_train.txt").is_file()


def test_scan_names_duplicate_and_broken_stem_files_and_prints_no_nan(tmp_path):
    rng = np.random.default_rng(4)
    for name in ("a", "b"):
        write_track(tmp_path / "data" / "train" / name, noise_stems(rng, 7.0))
    x, sr = sf.read(tmp_path / "data" / "train" / "a" / "bass.wav")
    sf.write(tmp_path / "data" / "train" / "a" / "bass.flac", x * 0.5, sr)
    (tmp_path / "data" / "train" / "b" / "vocals.wav").unlink()
    (tmp_path / "data" / "train" / "b" / "vocals.wav").symlink_to(tmp_path / "gone.wav")
    res = run(curate_app, "scan", tmp_path / "data", "--no-score", "-o", tmp_path / "m.parquet")
    assert res.exit_code == 0, res.output
    problems = pd.read_parquet(tmp_path / "m.problems.parquet")
    dup = problems[problems["check"] == "duplicate"]
    assert (
        dup[["track", "stem", "path"]].values.tolist() == [["a", "bass", "train/a/bass.flac"]]
        and "bass.wav is read" in dup["detail"].iloc[0]
    )
    broken = problems[(problems["track"] == "b") & (problems["stem"] == "vocals")]
    assert broken["check"].tolist() == ["decode"] and "broken symbolic link" in broken["detail"].iloc[0], broken
    assert "│ nan" not in res.output and " nan " not in res.output  # a track-level problem's stem prints as "-"


@pytest.mark.parametrize(
    "edit, what",
    [
        (lambda d: d.assign(start=d["start"] - 10**9), "start < 0"),
        (lambda d: d.assign(end=d["start"]), "end <= start"),
        (lambda d: d.assign(sample_rate=0), "sample_rate < 1"),
        (lambda d: d.assign(channels=-2), "channels < 1"),
        (lambda d: d.assign(quality=2.0), "quality outside [0, 1]"),
        (lambda d: d.assign(mixture_lock=1.5), "mixture_lock outside [-1, 1]"),
        (lambda d: d.assign(mixture_lock=-3.0), "mixture_lock outside [-1, 1]"),
        (lambda d: d.assign(rms_db=np.inf), "rms_db not finite"),
        (lambda d: d.assign(track=None), "column 'track' has"),
        (None, "unreadable 'stemcurate.meta'"),
    ],
)
def test_hand_edited_manifests_are_one_line_errors(world, tmp_path, edit, what):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(world / "scored.parquet")
    meta = dict(table.schema.metadata)
    if edit is None:
        meta[b"stemcurate.meta"] = b"{not json"
    else:
        frame = edit(table.to_pandas())
        table = pa.Table.from_pandas(
            frame, schema=pa.schema([f.with_nullable(True) for f in table.schema]), preserve_index=False
        )
    bad = tmp_path / "edited.parquet"
    pq.write_table(table.replace_schema_metadata(meta), bad)
    one_line_error(
        run(curate_app, "filter", bad, "-o", tmp_path / "c.parquet", "--rejected", tmp_path / "r.parquet"), bad, what
    )
    one_line_error(
        run(
            pipelines_app, "train", "-m", bad, "--model", "tiny", "-o", tmp_path / "run", "--export-dir", tmp_path / "e"
        ),
        bad,
        what,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.parquet"]


def test_a_nan_rms_is_a_one_line_error(world, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(world / "scored.parquet")
    i = table.schema.get_field_index("rms_db")
    values = np.full(len(table), np.nan, np.float32)  # NaN values, not nulls (which the schema check names)
    table = table.set_column(i, table.schema.field(i), pa.array(values, type=pa.float32(), from_pandas=False))
    bad = tmp_path / "nan.parquet"
    pq.write_table(table, bad)
    one_line_error(
        run(curate_app, "filter", bad, "-o", tmp_path / "c.parquet", "--rejected", tmp_path / "r.parquet"),
        bad,
        "rms_db missing",
    )


def test_a_manifest_with_some_rows_unscored_names_them(world, tmp_path):
    frame = pd.read_parquet(world / "scored.parquet")
    frame.loc[1, "quality"] = np.nan
    bad = tmp_path / "partly.parquet"
    write_manifest(frame, bad, root=read_manifest(world / "scored.parquet").root)
    one_line_error(
        run(curate_app, "filter", bad, "-o", tmp_path / "c.parquet", "--rejected", tmp_path / "r.parquet"),
        bad,
        f"1 of {len(frame)} rows have no quality score (first: row 1",
    )


DEVICES = ["nonsense", "cuda:7"] + ([] if __import__("torch").cuda.is_available() else ["cuda"])


@pytest.mark.parametrize("device", DEVICES)
def test_devices_this_machine_lacks_are_one_line_errors(world, tmp_path, device):
    mix = world / "data" / "test" / "good" / "mixture.wav"
    for app, args in (
        (pipelines_app, ["separate", "-i", mix, "-o", tmp_path / "sep", "-c", world / "models", "-d", device]),
        (
            pipelines_app,
            ["evaluate", world / "models", "--data", world / "data", "-o", tmp_path / "r.parquet", "--device", device],
        ),
        (
            curate_app,
            [
                "scan",
                world / "data",
                "--embedder",
                "features",
                "--no-reference-pool",
                "-o",
                tmp_path / "m.parquet",
                "--device",
                device,
            ],
        ),
    ):
        one_line_error(run(app, *args), f"--device {device}")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["--accelerator", "nonsense"],
        ["--devices", "0"],
        ["--devices", "-1"],
        ["--devices", "abc"],
        ["--strategy", "nonsense"],
    ]
    + ([] if __import__("torch").cuda.is_available() else [["--accelerator", "gpu"]]),
)
def test_trainer_options_this_machine_cannot_run_are_one_line_errors(world, tmp_path, args):
    res = run(
        pipelines_app, *tiny(world / "scored.parquet", tmp_path / "run", tmp_path / "e", "--max-steps", "1", *args)
    )
    one_line_error(res, args[0])
    assert not any(tmp_path.iterdir())


EXTREMES = [  # (app, arguments): numbers far outside what the option means
    (curate_app, ["synth", "{tmp}/s", "-n", "1", "--seconds", "1e9"]),
    (curate_app, ["synth", "{tmp}/s", "-n", "1", "--seed", "-1"]),
    (curate_app, ["corrupt", "{data}", "{tmp}/n", "--seed", "-1"]),
    (curate_app, ["scan", "{data}", "--no-score", "-o", "{tmp}/m.parquet", "--sad-chunks", "1000000"]),
    (curate_app, ["scan", "{data}", "--no-score", "-o", "{tmp}/m.parquet", "--sad-hop", "0.0001"]),
    (pipelines_app, ["evaluate", "{models}", "--data", "{data}", "-o", "{tmp}/r.parquet", "--frame", "1e9"]),
    (
        pipelines_app,
        ["evaluate", "{models}", "--data", "{data}", "-o", "{tmp}/r.parquet", "--frame", "0.01", "--hop", "0.01"],
    ),
    (
        pipelines_app,
        ["separate", "-i", "{data}/test/good/mixture.wav", "-o", "{tmp}/sep", "-c", "{models}", "--frame", "1e9"],
    ),
    (
        pipelines_app,
        ["separate", "-i", "{data}/test/good/mixture.wav", "-o", "{tmp}/sep", "-c", "{models}", "--precision", "fp8"],
    ),
    (
        pipelines_app,
        ["separate", "-i", "{data}/test/good/mixture.wav", "-o", "{tmp}/sep", "-c", "{models}", "--hop", "0.00001"],
    ),
    (
        pipelines_app,
        [
            "separate",
            "-i",
            "{data}/test/good/mixture.wav",
            "-o",
            "{tmp}/sep",
            "-c",
            "{models}",
            "--precision",
            "fp16",
            "--device",
            "cuda:7",
        ],
    ),
] + [
    (
        pipelines_app,
        tiny("{scored}", "{tmp}/run", "{tmp}/e", "--max-steps", "1", *a),
    )
    for a in (
        ["--seed", "-1"],
        ["--seed", str(2**40)],
        *(
            ["--set", s]
            for s in (
                "crop_s=1e6",
                "crop_s=0.001",
                "valid_crop_s=1e6",
                "gain_db=-1",
                "gain_db=1e300",
                "warmup_alpha=1e300",
                "decay_gamma=2",
                "num_workers=-1",
                "channels=0",
                "channels=7",
                "n_fft=0",
                "n_fft=1",
                "hop=0",
                "hop=100000",
                "fc_dim=0",
                "rnn_dim=0",
                "mlp_dim=0",
                "num_layers=0",
                "sample_rate=0",
                "fade_s=-1",
            )
        ),
    )
]


@pytest.mark.parametrize("app, args", EXTREMES, ids=[" ".join(a[-2:]) for _, a in EXTREMES])
def test_extreme_numbers_are_one_line_errors_before_any_work(world, tmp_path, app, args):
    fill = {"tmp": tmp_path, "data": world / "data", "scored": world / "scored.parquet", "models": world / "models"}
    res = run(app, *[a.format(**fill) for a in args])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(lines) == 1, res.output
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "an output was written"


def test_scan_runs_at_most_one_process_per_core_and_track(world, tmp_path, monkeypatch):
    import concurrent.futures

    seen = []
    real = concurrent.futures.ProcessPoolExecutor

    class Recording(real):
        def __init__(self, max_workers=None, **kw):
            seen.append(max_workers)
            super().__init__(max_workers=max_workers, **kw)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Recording)
    res = run(curate_app, "scan", world / "data", "--no-score", "-o", tmp_path / "m.parquet", "-j", "1000")
    assert res.exit_code == 0, res.output
    assert seen and seen[0] <= min(os.cpu_count() or 1, len(BAD_TRACKS) + 2), seen


def test_an_interrupted_scan_rescans_tracks_whose_files_changed(tmp_path):
    from curate.scan import scan

    rng = np.random.default_rng(5)
    for name in ("a", "b"):
        write_track(tmp_path / "data" / "train" / name, noise_stems(rng, 20.0))

    def stop(track):
        if track.name == "b":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(tmp_path / "data", output=tmp_path / "m.parquet", score=None, on_track=stop)
    x, sr = sf.read(tmp_path / "data" / "train" / "a" / "vocals.wav")
    x[: 8 * sr] = 0  # the vocals of track a fall silent for 8 s after the interrupted scan
    sf.write(tmp_path / "data" / "train" / "a" / "vocals.wav", x, sr)
    result = scan(tmp_path / "data", output=tmp_path / "m.parquet", score=None)
    fresh = scan(tmp_path / "data", output=tmp_path / "fresh.parquet", score=None)
    assert result.resumed == 1  # b, unchanged; a was scanned again
    from curate.data.schema import read_manifest

    pd.testing.assert_frame_equal(
        read_manifest(tmp_path / "m.parquet").frame, read_manifest(tmp_path / "fresh.parquet").frame
    )
    a_vocals = fresh.fragments[(fresh.fragments["track"] == "a") & (fresh.fragments["stem"] == "vocals")]
    assert (
        len(a_vocals) and a_vocals["start"].min() >= 6 * SR
    )  # no fragment in the silence: the earlier part was not reused


def test_train_writes_only_into_a_new_empty_or_earlier_run_folder(world, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    (mine / "config.yaml").mkdir()  # not even a run's config file
    base = tiny_train(world / "scored.parquet", steps=1, batch=1, export_dir=tmp_path / "e")
    one_line_error(run(pipelines_app, *base, "-o", mine), mine, "not a training run folder")
    assert sorted(p.name for p in mine.iterdir()) == ["config.yaml", "notes.txt"] and not (tmp_path / "e").exists()
    (tmp_path / "file").write_text("x")
    one_line_error(run(pipelines_app, *base, "-o", tmp_path / "file"), tmp_path / "file")
    # a run that stopped before its first checkpoint (config.yaml and logs only) is started again
    failed = tmp_path / "failed"
    (failed / "logs").mkdir(parents=True)
    (failed / "config.yaml").write_text("model: {}\n")
    assert run(pipelines_app, *base, "-o", failed).exit_code == 0
    assert (failed / "checkpoints" / "last.ckpt").is_file()


def _train_one_step(tmp_path: Path):
    """One step of the tiny model on ``tmp_path/m.parquet``, into ``tmp_path/run`` and ``tmp_path/e``."""
    return run(pipelines_app, *tiny(tmp_path / "m.parquet", tmp_path / "run", tmp_path / "e", "--max-steps", "1"))


def test_train_refuses_a_moved_dataset_before_writing_anything(world, tmp_path):
    data = _copy(world / "data", tmp_path / "data")
    assert run(curate_app, "scan", data, "--embedder", "features", "-o", tmp_path / "m.parquet").exit_code == 0
    data.rename(tmp_path / "moved")
    res = _train_one_step(tmp_path)
    one_line_error(res, tmp_path / "m.parquet", "was the dataset moved")
    assert not (tmp_path / "run").exists() and not (tmp_path / "e").exists()


def test_a_short_run_its_report_resume_rules_and_report_kinds(world, tmp_path):
    run_dir = tmp_path / "run"
    args = tiny_train(world / "scored.parquet", steps=3, batch=1, out=run_dir, export_dir=tmp_path / "e")
    assert run(pipelines_app, *args).exit_code == 0
    # a run shorter than the logging interval still logs, so its report has a loss curve
    assert run(pipelines_app, "report", run_dir, "-o", tmp_path / "run.html").exit_code == 0
    # --resume takes the run's own settings: anything else that would change them is refused, not ignored
    (tmp_path / "other.parquet").write_bytes((world / "scored.parquet").read_bytes())
    for extra, named in (
        (["--seed", "3"], "--seed"),
        (["-b", "2"], "--batch-size"),
        (["--set", "lr=0.1"], "--set lr"),
        (["--model", "paper"], "--model"),
        (["-m", tmp_path / "other.parquet"], "--manifest"),
        (["-t", "bass"], "a 'vocals' run"),
        (["--set", "fc_dim=8"], "--set fc_dim"),
    ):
        one_line_error(run(pipelines_app, "train", "--resume", "-o", run_dir, "--max-steps", "4", *extra), named)
    # the command that started the run, repeated with --resume and more steps, changes nothing else: it is taken
    res = run(
        pipelines_app,
        *args[: args.index("--max-steps")],
        "--max-steps",
        "4",
        *args[args.index("--max-steps") + 2 :],
        "--resume",
        "--set",
        "val_every=2",
    )
    assert res.exit_code == 0 and "steps          4" in res.output, res.output
    one_line_error(
        run(pipelines_app, "train", "--resume", "-o", run_dir, "--max-steps", "2"), "--max-steps 2", "already at step 4"
    )
    mix = world / "data" / "test" / "good" / "mixture.wav"  # a run folder is no place for separated stems
    one_line_error(
        run(pipelines_app, "separate", "-i", mix, "-o", run_dir, "-c", run_dir), run_dir, "training run folder"
    )
    # a curation report and a run report are different kinds: neither replaces the other
    page = digest(tmp_path / "run.html")
    one_line_error(run(curate_app, "report", world / "scored.parquet", "-o", tmp_path / "run.html"), "run report")
    assert digest(tmp_path / "run.html") == page
    assert run(curate_app, "report", world / "scored.parquet", "-o", tmp_path / "cur.html").exit_code == 0
    one_line_error(run(pipelines_app, "report", run_dir, "-o", tmp_path / "cur.html"), "curation report")


def test_ctrl_c_during_training_saves_the_step_reached_and_says_how_to_resume(world, tmp_path, capsys):
    import lightning as L

    from bsrnn.model import BSRNNConfig
    from curate.common.cliutil import guarded
    from pipelines.config import TrainConfig
    from pipelines.train import TrainingInterrupted, train

    class CtrlC(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 2:
                raise KeyboardInterrupt

    cfg = TrainConfig(max_steps=5, batch_size=1, crop_s=1.0, valid_fraction=0.0, val_every=100)
    model = BSRNNConfig.preset("tiny", "vocals")
    with pytest.raises(TrainingInterrupted) as exc:
        train(
            world / "scored.parquet",
            model=model,
            config=cfg,
            out=tmp_path / "run",
            export_dir=tmp_path / "e",
            progress=False,
            callbacks=[CtrlC()],
        )
    import torch

    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert exc.value.step == 2 and exc.value.checkpoint == last
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2
    assert f"pipelines train --resume --out {tmp_path / 'run'}" in exc.value.resume_hint()

    @guarded
    def command():
        raise exc.value

    with pytest.raises(Exception) as stop:
        command()
    assert getattr(stop.value, "exit_code", None) == 130 and "stopped at step 2" in capsys.readouterr().err
    result = train(
        world / "scored.parquet",
        model=model,
        config=cfg,
        out=tmp_path / "run",
        resume=True,
        export_dir=tmp_path / "e",
        progress=False,
    )
    assert result.global_step == 5


def test_a_full_disk_while_writing_audio_or_a_checkpoint_keeps_the_earlier_file(tmp_path, monkeypatch):
    import errno

    import lightning.fabric.plugins.io.torch_io as torch_io

    from curate.common.errors import StemcurateError
    from curate.data import audio as audio_io
    from pipelines.trainer import atomic_checkpoint_io

    target = tmp_path / "vocals.wav"
    audio_io.write(target, np.zeros((2, 100), np.float32), SR)
    before = digest(target)

    def full(*args, **kwargs):
        raise sf.LibsndfileError(errno.ENOSPC, prefix="Error writing: ")

    monkeypatch.setattr(sf, "write", full)
    with pytest.raises(StemcurateError, match="vocals.wav: cannot write"):
        audio_io.write(target, np.ones((2, 100), np.float32), SR)
    assert digest(target) == before

    ckpt = tmp_path / "last.ckpt"
    io = atomic_checkpoint_io()
    io.save_checkpoint({"step": 1}, ckpt)
    before = digest(ckpt)

    def half_written(checkpoint, path):
        Path(path).write_bytes(b"PK\x03\x04 truncated")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch_io, "_atomic_save", half_written)
    with pytest.raises(StemcurateError, match="last.ckpt: cannot write"):
        io.save_checkpoint({"step": 2}, ckpt)
    assert digest(ckpt) == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "vocals.wav"]


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "256k"):
    """A tmpfs of ``size`` mounted on ``folder`` (created) for the block; the test is skipped where none can be
    mounted (not root, or no mount permission)."""
    import shutil
    import subprocess

    folder.mkdir(parents=True)
    if (
        shutil.which("mount") is None
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
        ).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
    try:
        yield folder
    finally:
        busy = subprocess.run(["umount", str(folder)], capture_output=True, text=True)
    assert busy.returncode == 0, f"a file on the disk is still open: {busy.stderr}"  # no descriptor left behind


def test_a_real_full_disk_is_named_in_the_operating_systems_words(tmp_path):
    """A 256-KB tmpfs filled by a 3-MB write: libsndfile says only "System error."; the message gives the
    operating system's reason, and nothing is left on the disk. Skipped where no tmpfs can be mounted."""
    from curate.common.errors import StemcurateError
    from curate.data import audio as audio_io

    with small_disk(tmp_path / "small") as disk:
        for name in ("big.wav", "big.flac"):
            with pytest.raises(StemcurateError) as err:
                audio_io.write(disk / name, np.random.default_rng(0).standard_normal((2, 441000)).astype("float32"), SR)
            assert str(err.value) == f"{disk / name}: cannot write (No space left on device)"
            assert not list(disk.iterdir())


def test_a_full_disk_when_training_exports_or_a_scan_takes_its_lock_is_one_line(world, tmp_path, monkeypatch):
    """torch.save on a full disk raises its own RuntimeError ("unexpected pos ..."), and the scan's lock file
    could not take its few bytes: both were tracebacks with exit code 1 (the lock's write failing as a full
    disk makes it fail: a tmpfs takes a few bytes more than its size)."""
    with small_disk(tmp_path / "small", "256k") as disk:
        args = tiny_train(
            world / "scored.parquet", "--target", "bass", out=tmp_path / "run", export_dir=disk / "models"
        )
        line = one_line_error(run(pipelines_app, *args), disk / "models", "No space left on device")
        assert "bass.ckpt: cannot write" in line and not list((disk / "models").iterdir())  # no empty bass/

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("curate.common.lock.os.write", full)
    res = run(curate_app, "scan", world / "data", "--no-score", "-o", tmp_path / "m.parquet")
    one_line_error(res, tmp_path / "m.parquet", "cannot write (No space left on device)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small"]


def test_a_nearly_full_disk_at_the_start_of_a_scan_and_under_a_parquet_writer_is_one_line(world, tmp_path):
    """A 4-KB disk: the scan's settings stamp was written outside the atomic writer (a traceback, exit 1, a
    .tmp left); pyarrow's own wording ("Error writing bytes to file. Detail: [errno 28] ...") reached the user."""
    with small_disk(tmp_path / "small", "4k") as disk:
        res = run(curate_app, "scan", world / "data", "--no-score", "-o", disk / "m.parquet")
        one_line_error(res, disk / "m.parquet", "cannot write (No space left on device)")
        assert not list(disk.rglob("*.tmp"))
    with small_disk(tmp_path / "tiny", "4k") as disk:
        res = run(curate_app, "filter", world / "scored.parquet", "-o", disk / "c.parquet", "-t", "0.05")
        line = one_line_error(res, disk, "cannot write (No space left on device)")
        assert "Error writing bytes" not in line and not list(disk.rglob("*.tmp")), line
        # the first thing export and separate write is their hidden marker: said at the folder, none left
        for app, args in (
            (curate_app, ["export", world / "scored.parquet", disk / "exp"]),
            (
                pipelines_app,
                ["separate", "-i", world / "data" / "test" / "good", "-o", disk / "sep", "-c", world / "models"],
            ),
        ):
            line = one_line_error(run(app, *args), args[-3] if app is pipelines_app else args[-1], "No space left")
            assert ".stemcurate" not in line and not [p for p in disk.iterdir() if p.name != "c.parquet"], line


def test_a_full_disk_during_export_or_repair_names_the_users_output_not_a_work_folder(world, tmp_path):
    """Export and repair fill hidden work folders (``.NAME.partial``) renamed into place at the end: a
    write that fails there is reported at the path the user asked for, and nothing is left on the disk."""
    cases = {
        "export": lambda out: ["export", world / "scored.parquet", out],
        "repair": lambda out: ["repair", world / "scored.parquet", out],
    }
    for name, args in cases.items():
        with small_disk(tmp_path / name, "1m") as disk:
            out = disk / "mine"
            res = run(curate_app, *args(out))
            line = one_line_error(res, out, "No space left on device")
            assert ".partial" not in line and ".tmp" not in line, line
            assert not list(disk.iterdir()), list(disk.rglob("*"))


# ---------------------------------------------------------------- third review: paths that go back out, stale
# outputs, rates, changed files, the API


def test_outputs_through_a_missing_folder_and_back_are_checked_where_they_land(world, tmp_path):
    """``new/../x`` names ``x`` once ``new`` is created: each command checks ``x``, not the path as given."""
    data = _copy(world / "data", tmp_path / "data")
    vocals = data / "train" / "good" / "vocals.wav"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    models = _copy(world / "models", tmp_path / "models")
    song = tmp_path / "good.wav"
    song.write_bytes((data / "test" / "good" / "mixture.wav").read_bytes())
    keep = {p: digest(p) for p in [*data.rglob("*.wav"), mine / "notes.txt", *models.rglob("*.ckpt")]}
    via = lambda name, target: tmp_path / name / ".." / target.relative_to(tmp_path)  # noqa: E731
    cases = [
        (curate_app, ["scan", data, "--no-score", "-o", via("n1", vocals)], "not a stemcurate manifest"),
        (pipelines_app, ["separate", "-i", song, "-o", via("n2", data / "train"), "-c", models], "dataset"),
        (
            pipelines_app,
            tiny(world / "scored.parquet", via("n3", mine), tmp_path / "e", "--max-steps", "1"),
            "not a training run folder",
        ),
        (
            pipelines_app,
            tiny(world / "scored.parquet", tmp_path / "run", via("n4", models), "--max-steps", "1"),
            "another run",
        ),
        (curate_app, ["synth", via("n5", mine), "--tracks", "1", "--seconds", "1"], "not a curate synth dataset"),
    ]
    for app, args, why in cases:
        one_line_error(run(app, *args), why)
    assert {p: digest(p) for p in keep} == keep
    assert not any((tmp_path / f"n{i}").exists() for i in range(1, 6)) and not (tmp_path / "run").exists()


def test_scan_removes_only_parts_folders_it_wrote(world, tmp_path):
    songs = tmp_path / "songs.parts"  # a dataset whose name is the manifest's parts folder
    _copy(world / "data", songs)
    before = sorted(p.relative_to(songs).as_posix() for p in songs.rglob("*"))
    one_line_error(run(curate_app, "scan", songs, "--no-score", "-o", tmp_path / "songs"), songs, "parts folder")
    assert sorted(p.relative_to(songs).as_posix() for p in songs.rglob("*")) == before
    (tmp_path / "m.parquet.parts").write_text("a file")
    one_line_error(
        run(curate_app, "scan", songs, "--no-score", "-o", tmp_path / "m.parquet"), tmp_path / "m.parquet.parts"
    )
    # an interrupted scan's own parts folder (another scan's settings) is replaced
    (tmp_path / "m.parquet.parts").unlink()
    (tmp_path / "m.parquet.parts").mkdir()
    (tmp_path / "m.parquet.parts" / "scan.json").write_text('{"kind": "stemcurate scan parts", "version": 0}')
    assert run(curate_app, "scan", songs, "--no-score", "-o", tmp_path / "m.parquet").exit_code == 0
    assert not (tmp_path / "m.parquet.parts").exists()


def test_synth_into_an_earlier_synth_folder_leaves_only_the_new_tracks(tmp_path):
    out = tmp_path / "synth"
    assert (
        run(curate_app, "synth", out, "--tracks", "3", "--test-tracks", "1", "--seconds", "1", "--seed", "1").exit_code
        == 0
    )
    assert run(curate_app, "synth", out, "--tracks", "2", "--seconds", "1", "--seed", "2").exit_code == 0
    import json

    listed = {t["name"] for t in json.loads((out / "synth.json").read_text())["tracks"]}
    on_disk = {p.name for sub in ("train", "test") if (out / sub).is_dir() for p in (out / sub).iterdir()}
    assert on_disk == listed == {"synth002-000", "synth002-001"}


def test_sample_rates_outside_the_range_read_are_problems_not_crashes(tmp_path):
    from bsrnn.separator import AudioError

    rng = np.random.default_rng(3)
    for name, sr in (("t1000", 1000), ("t100", 100), ("t1", 1)):
        write_track(tmp_path / "data" / "train" / name, noise_stems(rng, 7.0, sr=max(sr, 1)), sr=sr)
    write_track(tmp_path / "data" / "train" / "t8k", noise_stems(rng, 7.0, sr=8000), sr=8000)
    res = run(
        curate_app,
        "scan",
        tmp_path / "data",
        "--embedder",
        "features",
        "--no-reference-pool",
        "-o",
        tmp_path / "m.parquet",
    )
    assert res.exit_code == 0, res.output
    problems = pd.read_parquet(tmp_path / "m.problems.parquet")
    low = problems[problems["check"] == "sample_rate"]
    assert set(low["track"]) == {"t1000", "t100", "t1"} and (low["severity"] == "skipped").all()
    assert set(pd.read_parquet(tmp_path / "m.parquet")["track"]) == {"t8k"}  # 8 kHz is read
    # separate skips a file that declares 1 Hz (it would be resampled 44100-fold), the API refuses it
    sf.write(tmp_path / "one_hz.wav", rng.standard_normal((50, 2)).astype(np.float32) * 0.1, 1)
    res = run(
        pipelines_app,
        "separate",
        "-i",
        tmp_path / "one_hz.wav",
        "-o",
        tmp_path / "sep",
        "-c",
        random_models(tmp_path / "models"),
    )
    assert res.exit_code == 2 and f"skipped {tmp_path / 'one_hz.wav'}: 1 Hz" in res.output, res.output
    from bsrnn.separator import Separator

    sep = Separator.from_checkpoint(tmp_path / "models" / "vocals" / "vocals.ckpt")
    for rate in (1, 100, 10**7, "44100", 44100.5, True):  # a resampling factor of at most 16
        with pytest.raises(AudioError, match="sample rate"):
            sep(np.zeros((2, 1000), np.float32), rate)
    assert set(sep(np.zeros((2, 1000), np.float32), 4000)) == {"vocals"}


def test_files_shortened_after_the_scan_are_named_by_every_reader(world, tmp_path):
    data = _copy(world / "data", tmp_path / "data")
    assert (
        run(
            curate_app, "scan", data, "--embedder", "features", "--no-reference-pool", "-o", tmp_path / "m.parquet"
        ).exit_code
        == 0
    )
    for f in (data / "train" / "good").glob("[!.]*.wav"):  # half a second left of seven, in every file of the track
        x, sr = sf.read(f, always_2d=True)
        sf.write(f, x[: sr // 2], sr, subtype="FLOAT")
    res = _train_one_step(tmp_path)
    one_line_error(res, data / "train" / "good", "changed since the scan")
    assert not (tmp_path / "run").exists()
    res = run(curate_app, "repair", tmp_path / "m.parquet", tmp_path / "fixed")
    assert res.exit_code == 0, res.output
    log = pd.read_parquet(tmp_path / "fixed" / "repairs.parquet")
    detail = log.loc[(log["track"] == "good") & (log["action"] == "not repaired"), "detail"]
    assert len(detail) == 1 and "changed since the scan" in detail.iloc[0], log
    res = run(curate_app, "report", tmp_path / "m.parquet", "-o", tmp_path / "r.html", "--per-stem", "50")
    assert res.exit_code == 0, res.output
    assert "changed since the scan" in (tmp_path / "r.html").read_text()


def test_the_python_api_raises_stemcurate_errors_for_bad_arguments(world, tmp_path):
    from bsrnn.model import CheckpointError
    from bsrnn.separator import AudioError, Separator
    from curate.common.errors import StemcurateError
    from curate.scan import scan
    from pipelines.separate import separate_files

    assert issubclass(CheckpointError, ValueError) and issubclass(
        AudioError, ValueError
    )  # bsrnn imports nothing of the project
    for bad in ([], None, 3, tmp_path):
        with pytest.raises(CheckpointError):
            Separator.from_checkpoint(bad)
    sep = Separator.from_checkpoint(world / "models" / "vocals" / "vocals.ckpt")
    n = SR
    for audio, why in (
        (np.zeros((1, 2, n)), "shape"),
        (np.zeros((n, 2)), "transpose"),
        ("audio", "array of numbers"),
        (np.full((2, n), np.nan), "NaN"),
        (np.full((2, n), np.inf), "NaN"),
        (np.full((2, n), 1e30), "model gave NaN/inf"),
    ):
        with pytest.raises(AudioError, match=why):
            sep(audio, SR)
    mix = world / "data" / "test" / "good" / "mixture.wav"
    with pytest.raises(StemcurateError, match="list of audio file paths"):
        separate_files(str(mix), tmp_path / "s", sep)
    with pytest.raises(StemcurateError, match="Separator"):
        separate_files([mix], tmp_path / "s", None)
    assert separate_files([str(mix)], tmp_path / "s", sep).written
    data = world / "data"
    for kwargs, why in (
        (dict(output=None), "output"),
        (dict(sad_config="x"), "sad_config"),
        (dict(check_config=None), "check_config"),
        (dict(score="x"), "score"),
        (dict(jobs=0), "jobs"),
        (dict(jobs=1.5), "jobs"),
        (dict(stems=[1]), "stems"),
    ):
        with pytest.raises(StemcurateError, match=why):
            scan(data, **{"output": tmp_path / "m.parquet", **kwargs})
    assert not (tmp_path / "m.parquet").exists()
    result = scan(data, output=tmp_path / "m.parquet", stems="vocals", score=None)  # one stem's name, not its letters
    assert set(result.fragments["stem"]) == {"vocals"}


def test_txt_lists_refuse_track_names_they_cannot_hold(tmp_path):
    write_track(tmp_path / "data" / "train" / "a\tb", noise_stems(np.random.default_rng(4), 7.0))
    write_track(tmp_path / "data" / "train" / "c", noise_stems(np.random.default_rng(5), 7.0))
    res = run(
        curate_app, "scan", tmp_path / "data", "--no-score", "-o", tmp_path / "m.parquet", "--txt-dir", tmp_path / "txt"
    )
    one_line_error(res, "--txt-dir", "a\\tb")
    assert not (tmp_path / "m.parquet").exists() and not (tmp_path / "txt").exists()


def test_smaller_third_review_cases(world, tmp_path, monkeypatch):
    data = _copy(world / "data", tmp_path / "data")
    # a repaired copy inside the dataset it is made from would be read as part of it
    one_line_error(
        run(curate_app, "repair", world / "scored.parquet", world / "data" / "train" / "fixed"), "inside the dataset"
    )
    assert not (world / "data" / "train" / "fixed").exists()
    # the option is named
    one_line_error(
        run(curate_app, "scan", data, "--no-score", "--subset", "foo", "-o", tmp_path / "m.parquet"), "--subset foo"
    )
    # evaluating the train subset does not replace the test results or their log
    monkeypatch.chdir(tmp_path)
    res = run(pipelines_app, "evaluate", world / "models", "--data", data, "--subset", "train", "-n", "2")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.glob("results*")) == ["results_train.log", "results_train.parquet"]
    # a zero-length stem is empty, not silent
    problems = pd.read_parquet(world / "scored.problems.parquet")
    row = problems[(problems["track"] == "zerolen") & (problems["path"].str.endswith("vocals.wav"))]
    assert list(row["check"]) == ["empty"], row


# ---------------------------------------------------------------- fourth review: API argument types, huge numbers,
# long names, links


def test_api_arguments_of_the_wrong_type_are_named(world, tmp_path):
    from bsrnn.checkpoint import load_models
    from bsrnn.errors import BSRNNError, CheckpointError
    from bsrnn.separator import Separator
    from curate.common.errors import StemcurateError
    from curate.data.datasets import discover
    from curate.data.schema import read_manifest
    from curate.filter import filter_manifest
    from curate.scan import scan
    from curate.simulate.synth import synth_dataset
    from pipelines.evaluate import evaluate

    scored = world / "scored.parquet"
    cases = [
        (lambda: discover(123), "root 123"),
        (lambda: discover(b"/tmp"), "root b'/tmp'"),
        (lambda: read_manifest(None), "manifest None"),
        (
            lambda: filter_manifest(
                scored, threshold="0.5", output=tmp_path / "c.parquet", rejected=tmp_path / "r.parquet"
            ),
            "threshold",
        ),
        (
            lambda: filter_manifest(
                scored, bleed_db="x", output=tmp_path / "c.parquet", rejected=tmp_path / "r.parquet"
            ),
            "--bleed-db",
        ),
        (lambda: filter_manifest(scored, output=None), "output None"),
        (lambda: filter_manifest(read_manifest(scored)), "manifest"),
        (lambda: scan(world / "data", output=tmp_path / "m.parquet", txt_dir=5, score=None), "txt_dir 5"),
        (lambda: scan(world / "data", output=tmp_path / "m.csv", score=None), "give a .parquet path"),
        (lambda: evaluate({}, world / "data"), "non-empty"),
        (lambda: evaluate([1], world / "data"), "non-empty"),
    ]
    for i, (bad, kwargs) in enumerate(
        [
            ("tracks", {"tracks": "2"}),
            ("tracks", {"tracks": 1.5}),
            ("seed", {"seed": 1.5}),
            ("sample-rate", {"sample_rate": 0}),
            ("sample-rate", {"sample_rate": 8000.5}),
            ("tracks", {"tracks": 10**20}),
        ]
    ):
        cases.append((lambda i=i, kwargs=kwargs: synth_dataset(tmp_path / f"syn{i}", seconds=1, **kwargs), f"--{bad}"))
    for call, named in cases:
        with pytest.raises(StemcurateError, match=named.replace("(", r"\(")):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even an empty folder
    models = load_models(world / "models", "vocals")  # one target's name, not its letters
    assert list(models) == ["vocals"]
    results = evaluate(models, world / "data", tracks=2)  # what load_models returns goes straight in
    assert set(results["target"]) == {"vocals"}
    for bad in (dict(frame_s="3"), dict(batch_size=0)):
        with pytest.raises(BSRNNError):
            Separator(models["vocals"][1], **bad)
    with pytest.raises(CheckpointError, match="targets"):
        load_models(world / "models", [1])


def test_huge_numbers_and_long_names_are_one_line_errors_before_any_work(world, tmp_path):
    base = [
        "train",
        "-m",
        world / "scored.parquet",
        "--model",
        "tiny",
        "-b",
        "1",
        "--set",
        "crop_s=1",
        "--no-progress",
        "-o",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "e",
    ]
    one_line_error(run(pipelines_app, *base, "--max-steps", str(10**20)), "max_steps")
    one_line_error(run(pipelines_app, *base[:5], "-b", str(10**12), *base[7:], "--max-steps", "2"), "batch_size")
    one_line_error(run(curate_app, "synth", tmp_path / "syn", "--tracks", str(10**20), "--seconds", "1"), "--tracks")
    long = tmp_path / ("L" * 245 + ".parquet")  # a legal name, whose problems file would not be
    one_line_error(run(curate_app, "scan", world / "data", "--no-score", "-o", long), "more than the 255")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_separate_follows_links_to_a_dataset_and_names_broken_inputs(world, tmp_path):
    data = _copy(world / "data", tmp_path / "data")
    song = tmp_path / "songs" / "a.wav"
    song.parent.mkdir()
    song.write_bytes((data / "test" / "good" / "mixture.wav").read_bytes())
    (tmp_path / "link").symlink_to(data / "test")
    one_line_error(
        run(pipelines_app, "separate", "-i", song, "-o", tmp_path / "link", "-c", world / "models"), "subset folder"
    )
    one_line_error(
        run(pipelines_app, "separate", "-i", song, "-o", data / "test" / "good", "-c", world / "models"), "track folder"
    )
    (tmp_path / "songs" / "broken.wav").symlink_to(tmp_path / "nowhere.wav")
    res = run(pipelines_app, "separate", "-i", song.parent, "-o", tmp_path / "sep", "-c", world / "models")
    assert res.exit_code == 0 and f"skipped {song.parent / 'broken.wav'}: " in res.output, res.output


def test_report_names_clips_it_cannot_read_on_the_console(world, tmp_path):
    data = _copy(world / "data", tmp_path / "data")
    import shutil

    shutil.rmtree(data / "train" / "good")
    res = run(
        curate_app, "report", world / "scored.parquet", "--data", data, "-o", tmp_path / "r.html", "--per-stem", "50"
    )
    assert res.exit_code == 0 and "warning: " in res.output and str(data / "train" / "good") in res.output, res.output


def test_train_with_a_file_for_its_export_dir_makes_no_run_folder(world, tmp_path):
    """An --export-dir (or -o) that is a file is refused before either folder is made."""
    (tmp_path / "afile").write_text("x")
    one_line_error(
        run(pipelines_app, *tiny(world / "scored.parquet", tmp_path / "run", tmp_path / "afile")),
        f"{tmp_path / 'afile'}: exists and is not a folder",
    )
    assert not (tmp_path / "run").exists()
    one_line_error(
        run(pipelines_app, *tiny(world / "scored.parquet", tmp_path / "afile", tmp_path / "e")),
        "--out is the run folder",
    )
    assert not (tmp_path / "e").exists()


def test_train_names_a_file_given_nan_samples_after_the_scan(world, tmp_path):
    """The scan checked every sample; a file that gained NaN samples since is named by training (not
    "the training loss is nan")."""
    data = _copy(world / "data", tmp_path / "data")
    assert run(curate_app, "scan", data, "--embedder", "features", "-o", tmp_path / "m.parquet").exit_code == 0
    for f in sorted((data / "train").glob("*/[!.]*.wav")):
        try:
            x, sr = sf.read(f, always_2d=True)
        except sf.LibsndfileError:  # the world's broken files stay as they are
            continue
        x[:] = np.nan  # every sample: whichever crop is read first meets it
        sf.write(f, x, sr, subtype="FLOAT")
    line = one_line_error(_train_one_step(tmp_path), "NaN/inf samples", "changed since the scan")
    assert str(data / "train") in line


def test_an_abort_is_one_line_and_a_bug_is_its_own_traceback(capsys):
    """typer's own ``Abort`` (Ctrl-C at a prompt) is one line and exit 130; an unexpected exception is raised as
    it is (the last-resort handler looked for ``Abort`` where typer no longer has it and raised an
    AttributeError over every such exception)."""
    import typer

    from curate.common.cliutil import invoke, make_app

    app = make_app("demo", "demo")

    @app.command()
    def prompt():
        raise typer.Abort()

    @app.command()
    def bug():
        raise RuntimeError("a bug")

    with pytest.raises(SystemExit) as exc:
        invoke(app, ["prompt"])
    assert exc.value.code == 130 and capsys.readouterr().err.strip() == "interrupted"
    with pytest.raises(RuntimeError, match="a bug") as exc:
        invoke(app, ["bug"])
    assert exc.value.__context__ is None


def test_export_writes_the_sum_of_the_stems_beside_a_mixture_no_reader_can_use(synth_dir, tmp_path):
    """A mixture whose header was never finalised stopped the whole export (exit 2, nothing written). The
    export's mixture is the sum of the stems it writes, so the track's own mixture file is not read: the
    track is written whole, with that sum."""
    import shutil

    data = shutil.copytree(synth_dir, tmp_path / "data")
    assert run(curate_app, "scan", data, "--embedder", "features", "-o", tmp_path / "m.parquet").exit_code == 0
    tracks = sorted(p.name for p in (data / "train").iterdir())
    unfinalise(data / "train" / tracks[0] / "mixture.wav")
    res = run(curate_app, "export", tmp_path / "m.parquet", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == tracks
    folder = tmp_path / "out" / "train" / tracks[0]
    from curate.data import audio

    stems = sum(audio.read(f)[0] for f in folder.iterdir() if f.stem != "mixture")
    assert np.allclose(audio.read(folder / "mixture.wav")[0], stems, atol=4 * 2**-15)
