"""curate/decisions.py: review decisions beside the manifest, honoured by curate filter; written whole
by concurrent and killed writers."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from curate.cli import app
from curate.common.errors import StemcurateError
from curate.data.schema import read_manifest, write_manifest, write_parquet
from curate.decisions import REVIEW_REASON, Decision, decisions_path, read_decisions, record, unmatched
from curate.filter import filter_manifest
from curate.scan import scan
from curate.scantrack import ScoreConfig
from curate.simulate.synth import synth_dataset


@pytest.fixture
def scored(tmp_path):
    root = tmp_path
    synth_dataset(root / "data", tracks=3, seconds=6, seed=7)
    m = root / "m.parquet"
    scan(root / "data", output=m, score=ScoreConfig(embedder="features"))
    return m


def _key(r):
    return dict(track=r.track, subset=r.subset, stem=r.stem, start=int(r.start), end=int(r.end))


def test_filter_follows_keep_reject_relabel_bleed_ok_and_undo(scored, tmp_path):
    m = read_manifest(scored)
    frame = m.frame.copy()
    frame = frame.sort_values("quality").reset_index(drop=True)
    low, high = frame.iloc[0], frame.iloc[-1]
    # a leak the scan measured on a good fragment: rejected for it until the review accepts it
    leaky = frame.iloc[-2]
    frame.loc[frame.index[-2], ["bleed_db", "bleed_stem", "quality"]] = [-3.0, "drums", 0.05]
    write_manifest(frame, scored, root=m.root, meta=m.meta)
    t = float((frame["quality"].iloc[0] + frame["quality"].iloc[1]) / 2)  # the lowest fragment is rejected
    before = filter_manifest(scored, threshold=t, output=tmp_path / "k0.parquet", rejected=tmp_path / "r0.parquet")
    assert low.quality < t <= high.quality and len(before.rejected)
    track = next(t for t in sorted(set(frame["track"])) if t != low.track)  # relabelled, which keeps it
    record(scored, [
        Decision(**_key(low), decision="keep"),
        Decision(**_key(high), decision="reject", note="a guitar in the vocals"),
        Decision(**_key(leaky), decision="bleed_ok"),
        Decision(track=track, subset="train", stem="vocals", decision="relabel", new_label="other"),
        Decision(track=track, subset="train", stem="other", decision="relabel", new_label="vocals"),
    ])  # fmt: skip
    res = filter_manifest(scored, threshold=t, output=tmp_path / "k.parquet", rejected=tmp_path / "r.parquet")
    kept = {(r.track, r.path, r.start): r.stem for r in res.kept.itertuples()}
    rej = {(r.track, r.stem, r.start): r.reason for r in res.rejected.itertuples()}
    assert (low.track, low.path, low.start) in kept
    assert rej[(high.track, high.stem, high.start)] == REVIEW_REASON
    assert (leaky.track, leaky.path, leaky.start) in kept
    swapped = {p: s for (tr, p, _), s in kept.items() if tr == track and s in ("vocals", "other")}
    assert swapped and all(p.endswith("vocals.wav") == (s == "other") for p, s in swapped.items())
    # undo the keep: the low fragment follows the threshold again
    record(scored, [Decision(**_key(low), decision="undecided")])
    res = filter_manifest(scored, threshold=t, output=tmp_path / "k.parquet", rejected=tmp_path / "r.parquet")
    assert (low.track, low.path, low.start) not in {(r.track, r.path, r.start) for r in res.kept.itertuples()}
    # a relabel of one file of a pair leaves two files under one label: refused
    record(scored, [Decision(track=track, subset="train", stem="other", decision="undecided")])
    with pytest.raises(StemcurateError, match="two files labelled 'other'"):
        filter_manifest(scored, threshold=t, output=tmp_path / "k.parquet", rejected=tmp_path / "r.parquet")
    gone = Decision(track="no such track", subset="train", stem="bass", decision="keep")
    record(scored, [gone])
    assert list(unmatched(read_manifest(scored).frame, read_decisions(scored))["track"]) == ["no such track"]
    record(scored, [Decision(track=track, subset="train", stem="vocals", decision="undecided")])
    args = [
        "filter",
        str(scored),
        "-t",
        str(t),
        "-o",
        str(tmp_path / "k.parquet"),
        "--rejected",
        str(tmp_path / "r.parquet"),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "1 review decision(s) name no fragment" in res.output, res.output
    assert read_manifest(tmp_path / "k.parquet").meta["filter"]["review"] == {"reject": 1, "bleed_ok": 1, "relabel": 0}


def test_bad_decisions_are_refused():
    for kw, needle in (
        (dict(decision="maybe"), "one of keep"),
        (dict(decision="relabel"), "names its new label"),
        (dict(decision="keep", new_label="bass"), "names its new label"),
        (dict(decision="relabel", new_label="vocals"), "the label it has"),
        (dict(decision="keep", start=5, end=5), "start 5, end 5"),
    ):
        with pytest.raises(StemcurateError, match=needle):
            Decision(track="t", subset="train", stem="vocals", **kw)


WRITER = """
import sys
from curate.decisions import Decision, record
for i in range(int(sys.argv[2])):
    record(sys.argv[1], [Decision(track=f"{sys.argv[3]}{i}", subset="train", stem="vocals", decision="keep")])
"""


def test_two_writers_lose_nothing_and_a_killed_one_leaves_the_file_whole(tmp_path):
    m = tmp_path / "m.parquet"
    m.write_bytes(b"")  # the decisions file sits beside it; the manifest itself is not read here
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(m), "25", tag]) for tag in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    frame = read_decisions(m)
    assert len(frame) == 50 and set(frame["track"]) == {f"{t}{i}" for t in "ab" for i in range(25)}
    killed = subprocess.Popen([sys.executable, "-c", WRITER, str(m), "100000", "k"])
    time.sleep(3.0)
    killed.kill()
    killed.wait()
    frame = read_decisions(m)  # whole: every row it holds is a decision
    assert len(frame) > 50 and frame["decision"].eq("keep").all() and decisions_path(m).is_file()
    assert np.all(frame["time"].str.len() > 0)


def test_a_relabel_of_a_stem_mp4_stream_is_refused(scored, tmp_path):
    """A .stem.mp4's stem name picks its stream: relabelled, training would read another stream."""
    m = read_manifest(scored)
    frame = m.frame.copy()
    frame["path"] = frame["track"] + ".stem.mp4"  # filter reads no audio: the rows stand for a MUSDB18 file
    write_manifest(frame, scored, root=m.root, meta=m.meta)
    r = frame.iloc[0]
    record(
        scored,
        [
            Decision(
                track=r.track,
                subset=r.subset,
                stem=r.stem,
                decision="relabel",
                new_label="other" if r.stem != "other" else "bass",
            )
        ],
    )
    with pytest.raises(StemcurateError, match="a stream of a .stem.mp4"):
        filter_manifest(scored, threshold=0.5, output=tmp_path / "k.parquet", rejected=tmp_path / "r.parquet")


def test_export_follows_the_review(scored, tmp_path):
    """A kept call is written as it is, a rejected one silenced, a relabelled pair under its true names:
    from the scored manifest and from curate filter's kept manifest alike."""
    from curate.export import ExportConfig, export

    m = read_manifest(scored)
    frame = m.frame.sort_values("quality").reset_index(drop=True)
    t = float((frame["quality"].iloc[0] + frame["quality"].iloc[1]) / 2)  # the lowest fragment is rejected
    low, high = frame.iloc[0], frame.iloc[-1]
    track = next(x for x in sorted(set(frame["track"])) if x not in (low.track, high.track))
    record(scored, [
        Decision(**_key(low), decision="keep"),
        Decision(**_key(high), decision="reject"),
        Decision(track=track, subset="train", stem="vocals", decision="relabel", new_label="other"),
        Decision(track=track, subset="train", stem="other", decision="relabel", new_label="vocals"),
    ])  # fmt: skip
    filter_manifest(scored, threshold=t, output=tmp_path / "k.parquet", rejected=tmp_path / "r.parquet")
    src = scored.parent / "data" / "train"
    for name, manifest in (("scored", scored), ("kept", tmp_path / "k.parquet")):
        out = tmp_path / name
        export(manifest, out, config=ExportConfig(threshold=t if name == "scored" else None, valid_tracks=0))
        read = lambda tr, s: sf.read(str(out / "train" / tr / f"{s}.wav"), always_2d=True)[0]  # noqa: E731
        orig = lambda tr, s: sf.read(str(src / tr / f"{s}.wav"), always_2d=True)[0]  # noqa: E731
        assert np.array_equal(read(low.track, low.stem), orig(low.track, low.stem)), name
        inside = slice(int(high.start) + 4410, int(high.end) - 4410)
        assert not read(high.track, high.stem)[inside].any(), name
        assert np.array_equal(read(track, "other"), orig(track, "vocals")), name
        assert np.array_equal(read(track, "vocals"), orig(track, "other")), name


def test_repair_relabels_as_the_review_says(scored, tmp_path):
    from curate.repair import repair_dataset

    m = read_manifest(scored)
    track = sorted(set(m.frame["track"]))[0]
    record(scored, [
        Decision(track=track, subset="train", stem="bass", decision="relabel", new_label="drums"),
        Decision(track=track, subset="train", stem="drums", decision="relabel", new_label="bass"),
    ])  # fmt: skip
    table = repair_dataset(m, tmp_path / "fixed", decisions=read_decisions(scored))
    moved = table[(table["track"] == track) & (table["action"] == "relabel")]
    assert sorted(zip(moved["stem"], moved["new_stem"])) == [("bass", "drums"), ("drums", "bass")]
    src = scored.parent / "data" / "train" / track
    got = sf.read(str(tmp_path / "fixed" / "train" / track / "drums.wav"), always_2d=True)[0]
    bass = sf.read(str(src / "bass.wav"), always_2d=True)[0]
    assert np.corrcoef(got[:, 0], bass[:, 0])[0, 1] > 0.9  # leaks subtracted, the bass file's content


def test_the_report_counts_the_review(scored, tmp_path):
    from reports.curation import curation_report

    frame = read_manifest(scored).frame.sort_values("quality")
    record(scored, [Decision(**_key(r), decision="reject") for r in frame.tail(2).itertuples()])
    text = curation_report(scored, tmp_path / "r.html", threshold=0.5).read_text()
    assert "<h2>Review</h2>" in text and "2 review decisions" in text
    assert re.search(r"<td>reject</td>\s*<td[^>]*>2</td>\s*<td[^>]*>2</td>", text), text[text.index("<h2>Review") :][
        :600
    ]


def test_relabels_that_cannot_be_followed_are_refused_by_every_command(scored, tmp_path):
    from curate.export import ExportConfig, export
    from curate.repair import repair_dataset

    for kw, needle in (
        (dict(new_label="../../escaped"), "cannot name a stem's file"),
        (dict(new_label="mixture"), "cannot name a stem's file"),
        (dict(new_label=".hidden"), "cannot name a stem's file"),
        (dict(new_label="other", start=0, end=44100), "names the whole stem"),
    ):
        with pytest.raises(StemcurateError, match=needle):
            Decision(track="t", subset="train", stem="vocals", decision="relabel", **kw)
    with pytest.raises(StemcurateError, match="no such manifest"):
        record(tmp_path / "ghost.parquet", [Decision(track="t", subset="train", stem="vocals", decision="keep")])
    track = sorted(set(read_manifest(scored).frame["track"]))[0]
    runs = (
        lambda: filter_manifest(scored, threshold=0.5, output=tmp_path / "k.parquet", rejected=tmp_path / "r.parquet"),
        lambda: export(scored, tmp_path / "e", config=ExportConfig(threshold=0.5, valid_tracks=0)),
        lambda: repair_dataset(read_manifest(scored), tmp_path / "p", decisions=read_decisions(scored)),
    )
    for label, needle in (("vocal", "a label the dataset does not have"), ("bass", "two files labelled 'bass'")):
        record(scored, [Decision(track=track, subset="train", stem="vocals", decision="relabel", new_label=label)])
        for run in runs:
            with pytest.raises(StemcurateError, match=needle):
                run()
        assert not (tmp_path / "e").exists() and not (tmp_path / "p").exists()
    # a stored relabel without its label (a hand-edited file) is not read as a decision
    frame = read_decisions(scored)
    frame.loc[len(frame) - 1, "new_label"] = None
    write_parquet(frame, decisions_path(scored))
    with pytest.raises(StemcurateError, match="not a decision"):
        read_decisions(scored)


def test_decisions_recorded_on_a_kept_manifest_are_not_silently_dropped_by_export(scored, tmp_path):
    from curate.export import ExportConfig, export

    filter_manifest(scored, threshold=0.5, output=tmp_path / "k.parquet", rejected=tmp_path / "r.parquet")
    r = read_manifest(tmp_path / "k.parquet").frame.iloc[0]
    record(tmp_path / "k.parquet", [Decision(**_key(r), decision="reject")])
    with pytest.raises(StemcurateError, match="has review decisions of its own"):
        export(tmp_path / "k.parquet", tmp_path / "e", config=ExportConfig(valid_tracks=0))
