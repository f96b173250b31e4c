"""Ctrl-C pressed several times during a parallel scan, as a terminal sends it: to the whole process group."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CURATE = Path(sys.executable).with_name("curate")


def _alive(marker: str) -> list[str]:
    """Command lines of the processes still running with ``marker`` in them."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
            found.append(cmd)
    return found


@pytest.mark.skipif(not CURATE.exists() or sys.platform != "linux", reason="needs the installed console script")
@pytest.mark.parametrize("presses", [2, 3])
def test_repeated_ctrl_c_during_a_parallel_scan_stops_it_cleanly(tmp_path, presses):
    """Two presses 0.3 s apart hung the scan (the workers blocked on their result pipe), a third printed
    a traceback and left the workers running. Now: exit code 130, one line, no worker left, and the
    same command resumes to the end."""
    from curate.simulate.synth import synth_dataset

    data = tmp_path / f"songs{presses}"
    synth_dataset(data, tracks=4, test_tracks=0, seconds=8.0, seed=5)
    manifest = tmp_path / "m.parquet"
    cmd = [str(CURATE), "scan", str(data), "-o", str(manifest), "--jobs", "2", "--no-progress"]
    proc = subprocess.Popen(
        cmd,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a shell starts it, whatever ours does
    )
    parts = tmp_path / "m.parquet.parts"
    deadline = time.monotonic() + 120
    while not (parts.is_dir() and any(parts.glob("*.npz"))) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the workers are scanning once the first track is saved
    assert proc.poll() is None, proc.communicate()
    for _ in range(presses):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the scan did not stop within 60 s of Ctrl-C")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.splitlines()[0] == "interrupted: finished work is kept; run the same command again to resume", err
    time.sleep(0.5)
    assert _alive(str(data)) == []
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and manifest.is_file(), again.stderr


def test_worker_pool_ends_running_jobs_when_its_block_fails():
    """An interrupt in the main process ends the workers at once, a job in the middle of a long call
    included, and leaves the SIGINT handler as it was."""
    from curate.common.workers import worker_pool

    handler = signal.getsignal(signal.SIGINT)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with worker_pool(2) as pool:
            for _ in range(3):
                pool.submit(time.sleep, 60)
            processes = list(pool._processes.values())
            time.sleep(0.5)
            raise KeyboardInterrupt
    assert time.monotonic() - start < 10 and not any(p.is_alive() for p in processes)
    assert signal.getsignal(signal.SIGINT) is handler
