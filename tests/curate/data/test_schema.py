import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.common.errors import StemcurateError
from curate.data.schema import (
    MANIFEST_SCHEMA,
    META_VERSION,
    empty_frame,
    problems_path,
    read_manifest,
    write_manifest,
)


def _rows(n=3):
    return pd.DataFrame(
        dict(
            track=[f"t{i}" for i in range(n)],
            subset="train",
            stem="vocals",
            path=[f"train/t{i}/vocals.wav" for i in range(n)],
            start=[0, 132300, 264600][:n],
            end=[264600, 396900, 529200][:n],
            sample_rate=44100,
            channels=2,
            rms_db=-20.5,
        )
    )


def test_round_trip_keeps_values_types_root_and_meta(tmp_path):
    path = write_manifest(_rows(), tmp_path / "m.parquet", root=tmp_path, meta={"subset": "train"})
    m = read_manifest(path)
    assert m.root == tmp_path.resolve()
    assert m.meta == {"subset": "train"}
    assert list(m.frame.columns) == MANIFEST_SCHEMA.names
    assert m.frame["end"].tolist() == [264600, 396900, 529200]
    assert m.frame["quality"].isna().all() and not m.has_scores
    assert pq.read_schema(path).field("start").type == pa.int64()
    assert m.audio_path(m.frame.iloc[1]) == tmp_path.resolve() / "train/t1/vocals.wav"


def test_extra_columns_are_kept(tmp_path):
    df = _rows()
    df["corrupted"] = [True, False, True]
    m = read_manifest(write_manifest(df, tmp_path / "m.parquet", root=tmp_path))
    assert m.frame["corrupted"].tolist() == [True, False, True]


def test_missing_required_column_is_an_error_and_leaves_old_file(tmp_path):
    path = write_manifest(_rows(), tmp_path / "m.parquet", root=tmp_path)
    before = path.read_bytes()
    with pytest.raises(StemcurateError, match="missing required column 'track'"):
        write_manifest(_rows().drop(columns=["track"]), path, root=tmp_path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]  # no temp file left behind


def test_not_a_manifest(tmp_path):
    plain = tmp_path / "plain.parquet"
    _rows().to_parquet(plain)
    with pytest.raises(StemcurateError, match="not a stemcurate manifest"):
        read_manifest(plain)
    junk = tmp_path / "junk.parquet"
    junk.write_text("hello")
    with pytest.raises(StemcurateError, match="not a Parquet file"):
        read_manifest(junk)
    with pytest.raises(StemcurateError, match="not found"):
        read_manifest(tmp_path / "absent.parquet")


def test_wrong_version(tmp_path):
    path = write_manifest(_rows(), tmp_path / "m.parquet", root=tmp_path)
    table = pq.read_table(path)
    md = dict(table.schema.metadata)
    md[META_VERSION] = b"99"
    pq.write_table(table.replace_schema_metadata(md), path)
    with pytest.raises(StemcurateError, match="version 99"):
        read_manifest(path)


def test_end_before_start_rejected(tmp_path):
    df = _rows()
    df.loc[0, "end"] = 0
    with pytest.raises(StemcurateError, match="end <= start"):
        write_manifest(df, tmp_path / "m.parquet", root=tmp_path)


def test_empty_frame_and_problems_path(tmp_path):
    assert list(empty_frame().columns) == MANIFEST_SCHEMA.names
    assert problems_path(tmp_path / "out" / "m.parquet") == tmp_path / "out" / "m.problems.parquet"


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    import os

    from curate.common.atomic import atomic_path

    with atomic_path(tmp_path / "f.txt") as tmp:
        tmp.write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask
