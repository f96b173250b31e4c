"""Two commands writing one output: the second is refused while the first runs; a killed one blocks nothing."""

import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.common.errors import StemcurateError
from curate.common.lock import exclusive

runner = CliRunner()


def test_a_second_writer_is_refused_and_the_lock_goes_with_its_holder(tmp_path):
    out = tmp_path / "m.parquet"
    with exclusive(out, what="curate scan"):
        assert (tmp_path / ".m.parquet.lock").read_text().startswith("process ")
        with pytest.raises(StemcurateError, match=r"m.parquet: another curate scan is writing it \(process \d+ on "):
            with exclusive(out, what="curate scan"):
                pass
    assert list(tmp_path.iterdir()) == []  # released and removed
    with exclusive(out, what="curate scan"):  # free again
        pass
    # a holder killed outright (no clean-up) leaves its file, but not its lock
    code = (
        "import time\nfrom curate.common.lock import exclusive\n"
        f"with exclusive({str(out)!r}, what='x'):\n print('held', flush=True)\n time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(StemcurateError, match="another curate scan is writing it"):
        with exclusive(out, what="curate scan"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert (tmp_path / ".m.parquet.lock").exists()
    with exclusive(out, what="curate scan"):
        pass
    assert not (tmp_path / ".m.parquet.lock").exists()


def test_a_scan_refuses_a_manifest_that_another_scan_is_writing(synth_dir, tmp_path):
    out = tmp_path / "m.parquet"
    with exclusive(out, what="curate scan"):
        res = runner.invoke(app, ["scan", str(synth_dir), "--no-score", "-o", str(out)])
        assert res.exit_code == 2, res.output
        assert f"error: {out}: another curate scan is writing it (process" in res.output
        assert not out.exists() and not (tmp_path / "m.parquet.parts").exists()
    res = runner.invoke(app, ["scan", str(synth_dir), "--no-score", "-o", str(out), "--shard", "0/2"])
    assert res.exit_code == 0, res.output  # shards share their parts on purpose: never locked
    res = runner.invoke(app, ["scan", str(synth_dir), "--no-score", "-o", str(out)])
    assert res.exit_code == 0 and out.is_file(), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.parquet", "m.problems.parquet"]
