"""The noise-robust trainer: data, weighting, truncation, schedule, resume, CLI (tiny model, CPU)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from bsrnn.checkpoint import read_checkpoint as read_model
from curate.common.errors import StemcurateError
from curate.data.regions import region_mask
from curate.data.schema import read_manifest
from pipelines.cli import app
from pipelines.config import TrainConfig, model_config, parse_sets, train_config
from pipelines.data import FragmentPool, StepSampler, TrainExamples, fragment_corrupted, split_tracks
from pipelines.module import SeparationModule, ema_decay, lr_multiplier, warmup_end
from pipelines.robust import LossTruncation, combine, example_weights, relative_losses
from pipelines.train import train
from tests.conftest import tiny_train

runner = CliRunner()
FAST = dict(
    batch_size=4, crop_s=1.0, valid_crop_s=1.5, val_every=5, schedule="constant", warmup_steps=0, valid_fraction=0.0
)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """6 synth tracks, 30 % of the stems mislabelled (no leaks), scanned without scores."""
    from curate.scan import scan
    from curate.simulate.corrupt import LEAK_KINDS, MISLABEL_KINDS, corrupt_dataset
    from curate.simulate.synth import synth_dataset

    base = tmp_path_factory.mktemp("train")
    synth_dataset(base / "clean", tracks=6, test_tracks=0, seconds=8.0, seed=5)
    kinds = MISLABEL_KINDS + LEAK_KINDS  # without separated: the draws of the data these tests were written on
    corrupt_dataset(base / "clean", base / "noisy", mislabel_rate=0.3, bleed_rate=0.0, seed=1, kinds=kinds)
    scan(base / "noisy", output=base / "m.parquet", score=None)
    scan(base / "clean", output=base / "clean.parquet", score=None)
    return base


def _train(manifest, out, cfg, *, target="vocals", model=None, export=None, progress=False, **kw):
    """:func:`train` of the tiny model for ``target`` (or ``model``) with ``cfg`` into ``out``, exporting to
    ``export`` when given (else train's default), without progress unless ``progress``."""
    model = model if model is not None else model_config("tiny", target)
    if export is not None:
        kw["export_dir"] = export
    return train(manifest, model=model, config=cfg, out=out, progress=progress, **kw)


def test_weights_as_specified():
    q = torch.tensor([1.0, 0.5, 0.0, 0.9])
    assert torch.allclose(example_weights(q, "none"), torch.ones(4))
    assert torch.allclose(example_weights(q, "quality"), q * 4 / 2.4)
    b = example_weights(q, "binary", threshold=0.7, noisy_weight=0.1)
    assert torch.allclose(b, torch.tensor([1.0, 0.1, 0.1, 1.0]) * 4 / 2.2)
    assert torch.allclose(example_weights(torch.zeros(3), "quality"), torch.ones(3))
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])
    keep = torch.tensor([True, True, False, True])
    w = example_weights(q, "quality")
    expected = (w[0] * 1 + w[1] * 2 + w[3] * 4) / (w[0] + w[1] + w[3])
    assert torch.isclose(combine(losses, w, keep), expected)
    assert torch.isclose(combine(losses, torch.ones(4), torch.ones(4, dtype=torch.bool)), losses.mean())


def test_weighting_changes_the_training_loss():
    cfg = model_config("tiny", "vocals")
    torch.manual_seed(0)
    batch = {
        "mixture": torch.randn(3, 2, 22050) * 0.1,
        "target": torch.randn(3, 2, 22050) * 0.05,
        "quality": torch.tensor([1.0, 0.2, 0.6]),
        "corrupted": torch.tensor([0, 1, 0], dtype=torch.int8),
    }
    out = {}
    for mode in ("none", "quality", "binary"):
        torch.manual_seed(1)  # same initial weights for every mode
        m = SeparationModule(cfg.__dict__, TrainConfig(weighting=mode).__dict__)
        m.log = lambda *a, **k: None
        m.optimizers = lambda: type("Opt", (), {"param_groups": [{"lr": 0.0}]})()
        out[mode] = m
    ref = out["none"]
    with torch.no_grad():
        losses, _ = ref.example_losses(batch["mixture"], batch["target"])
        got = {k: float(m.training_step(batch, 0)) for k, m in out.items()}
    w = batch["quality"] / batch["quality"].sum() * 3
    assert got["none"] == pytest.approx(float(losses.mean()), rel=1e-5)
    assert got["quality"] == pytest.approx(float((w * losses).sum() / w.sum()), rel=1e-5)
    wb = torch.tensor([1.0, 0.1, 0.1])
    assert got["binary"] == pytest.approx(float((wb * losses).sum() / wb.sum()), rel=1e-5)


def test_truncation_batch_and_history():
    t = LossTruncation(0.25, mode="batch", warmup=0)
    keep = t.keep(torch.tensor([1.0, 2.0, 3.0, 10.0]), step=5)
    assert keep.tolist() == [True, True, True, False]
    h = LossTruncation(0.5, mode="history", warmup=2, history=4)
    assert h.keep(torch.tensor([1.0, 1.0]), step=0).all()  # warm-up
    h.keep(torch.tensor([1.0, 1.0]), step=1)
    keep = h.keep(torch.tensor([5.0, 0.5]), step=2)  # history now [1, 1, 5, 0.5]: median 1
    assert keep.tolist() == [False, True]
    assert len(h.history) == 4
    h2 = LossTruncation(0.5, mode="history", history=4)
    h2.load_state_dict(h.state_dict())
    assert list(h2.history) == list(h.history)
    assert LossTruncation(0.9, mode="batch").keep(torch.tensor([3.0, 3.0]), step=0).any()  # never drops all


def test_truncation_by_level_drops_the_worst_of_every_level():
    """Quiet targets have higher relative losses than loud ones; compared like with like, each level
    loses its own worst examples instead of the quiet ones losing everything."""
    gen = torch.Generator().manual_seed(0)
    quiet = 2.0 + torch.rand(200, generator=gen)  # levels around -20 dB
    loud = 0.5 + torch.rand(200, generator=gen)  # levels around 0 dB
    scores = torch.cat([quiet, loud])
    levels = torch.cat([torch.full((200,), -20.0), torch.full((200,), 0.0)]) + torch.rand(400, generator=gen)
    flat = LossTruncation(0.3, mode="history", history=400)
    banded = LossTruncation(0.3, mode="history", history=400, band_db=3.0)
    for t in (flat, banded):
        t.keep(scores, step=0, levels=levels)
    q_flat = flat.keep(scores, step=1, levels=levels)
    q_band = banded.keep(scores, step=1, levels=levels)
    assert (~q_flat[:200]).float().mean() > 0.55 and (
        ~q_flat[200:]
    ).float().mean() == 0  # all dropped examples are quiet
    for part in (slice(0, 200), slice(200, 400)):  # about 30 % of each level
        assert 0.2 < float((~q_band[part]).float().mean()) < 0.4
    assert bool(q_band[quiet.argmax()]) is False and bool(q_band[200 + loud.argmax()]) is False
    banded2 = LossTruncation(0.3, mode="history", history=400, band_db=3.0)
    banded2.load_state_dict(banded.state_dict())
    assert torch.equal(banded2.keep(scores, step=1, levels=levels), banded.keep(scores, step=1, levels=levels))


def test_truncation_ranks_losses_free_of_the_example_level():
    """The same example 20 dB louder has a 10x larger loss, and the same relative one; a target that
    is not in the mixture ranks above the mixture's own part at either level."""
    torch.manual_seed(0)
    t = torch.arange(22050) / 22050
    vocal = 0.1 * torch.sin(2 * torch.pi * 440 * t).expand(2, -1)
    rest = 0.1 * torch.randn(2, 22050)
    foreign = 0.1 * torch.sin(2 * torch.pi * 97 * t).expand(2, -1)
    mixture = torch.stack([vocal + rest, 10 * (vocal + rest), vocal + rest, 10 * (vocal + rest)])
    target = torch.stack([vocal, 10 * vocal, foreign, 10 * foreign])
    cfg = model_config("tiny", "vocals").__dict__
    torch.manual_seed(1)
    rel = SeparationModule(cfg, TrainConfig(truncate=True).__dict__)
    torch.manual_seed(1)
    ab = SeparationModule(cfg, TrainConfig(truncate=True, truncate_on="absolute").__dict__)
    with torch.no_grad():
        losses, est = rel.example_losses(mixture, target)
        scores, levels = rel.truncation_scores(losses, mixture, target)
        losses2, _, target_spec = rel._losses(mixture, target)  # what training_step hands over
        assert torch.equal(losses2, losses)
        reused = rel.truncation_scores(losses, mixture, target, target_spec=target_spec)
        assert torch.equal(reused[0], scores) and torch.equal(reused[1], levels)
        assert torch.equal(ab.truncation_scores(losses, mixture, target)[0], losses)
        assert (
            torch.allclose(levels[1], levels[0], atol=1e-3) and float(levels[0]) < 0
        )  # the target is part of the mixture
        silent = rel._l1(rel.model.stft(target), target)  # the loss of a zero estimate
    assert float(losses[1] / losses[0]) == pytest.approx(10.0, rel=1e-3)
    assert float(scores[1] / scores[0]) == pytest.approx(1.0, rel=1e-3)
    assert float(scores[3] / scores[2]) == pytest.approx(1.0, rel=1e-3)
    assert float(scores[2]) > float(scores[0]) and float(scores[2]) > float(scores[1])
    assert float(losses[1]) > float(losses[2])  # by the raw loss the loud clean example would go first
    mix_silent = rel._l1(rel.model.stft(mixture), mixture)
    assert torch.allclose(scores, losses / (silent + 0.1 * mix_silent))
    assert torch.allclose(
        relative_losses(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 0.0]), torch.tensor([10.0, 10.0])),
        torch.tensor([1.0, 3.0]),
    )
    with pytest.raises(StemcurateError, match="truncate_on"):
        TrainConfig(truncate_on="level")


def test_default_schedule_warms_up_linearly_then_follows_a_cosine():
    cfg = TrainConfig(max_steps=1100, warmup_steps=100, min_lr_ratio=0.01)
    assert cfg.schedule == "cosine"
    assert lr_multiplier(0, cfg) == pytest.approx(0.01)  # learning from the first step
    assert lr_multiplier(49, cfg) == pytest.approx(0.5)
    assert lr_multiplier(99, cfg) == pytest.approx(1.0)
    assert lr_multiplier(100, cfg) == pytest.approx(1.0)
    assert lr_multiplier(600, cfg) == pytest.approx(0.01 + 0.99 * 0.5)  # half way down the cosine
    assert lr_multiplier(350, cfg) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi / 4)))
    assert lr_multiplier(1100, cfg) == pytest.approx(0.01) == lr_multiplier(5000, cfg)  # held at the floor
    rates = [lr_multiplier(s, cfg) for s in range(1100)]
    assert all(a <= b for a, b in zip(rates[:100], rates[1:101])) and all(
        a >= b for a, b in zip(rates[100:], rates[101:])
    )
    flat = TrainConfig(schedule="constant", warmup_steps=10)
    assert [lr_multiplier(s, flat) for s in (0, 9, 10, 10**6)] == pytest.approx([0.1, 1.0, 1.0, 1.0])
    assert lr_multiplier(0, TrainConfig(warmup_steps=0, max_steps=10)) == 1.0  # no warm-up
    assert warmup_end(cfg) == 100 and warmup_end(TrainConfig(schedule="seed")) == 1000
    with pytest.raises(StemcurateError, match="schedule must be one of"):
        TrainConfig(schedule="plateau")
    with pytest.raises(StemcurateError, match="min_lr_ratio"):
        TrainConfig(min_lr_ratio=1.5)
    with pytest.raises(StemcurateError, match="warmup_steps"):
        TrainConfig(warmup_steps=-1)


def test_seed_schedule_is_the_seeds():
    cfg = TrainConfig(schedule="seed", warmup_epochs=10, warmup_alpha=0.1, decay_gamma=0.98, epoch_steps=100)
    assert lr_multiplier(0, cfg) == pytest.approx(0.1**10)
    assert lr_multiplier(950, cfg) == pytest.approx(0.1)
    assert lr_multiplier(1000, cfg) == pytest.approx(1.0)
    assert lr_multiplier(1250, cfg) == pytest.approx(0.98**2)


def test_mask_and_sampler():
    m = region_mask(np.array([10, 40]), np.array([40, 60]), 80, fade=4)
    assert (m[14:56] == 1).all() and m[:10].sum() == 0 and m[60:].sum() == 0  # touching fragments merge
    assert 0 < m[10] < m[13] < 1 and 0 < m[59] < 1
    full = region_mask(np.array([-5]), np.array([100]), 80, fade=4)
    assert (full == 1).all()  # no fades where the fragment runs past the window
    s = list(StepSampler(2, 4, 3, rank=1, world=2))
    assert s == [(2 * 2 + 1) * 3 + i for i in range(3)] + [(3 * 2 + 1) * 3 + i for i in range(3)]


def test_examples_are_deterministic_and_only_use_manifest_audio(noisy):
    m = read_manifest(noisy / "m.parquet")
    tracks = sorted(set(m.frame["track"]))
    cfg = TrainConfig(seed=3, crop_s=1.0, remix_p=0.5, silence_p=0.2)
    # keep only the first vocals fragment of each track and nothing else of one stem
    frame = m.frame[m.frame["stem"] != "drums"]
    pool = FragmentPool(replace(m, frame=frame), tracks)
    ds = TrainExamples(pool, "vocals", cfg, sample_rate=44100, channels=2, length=100)
    a, b = ds[7], ds[7]
    assert torch.equal(a["mixture"], b["mixture"]) and torch.equal(a["target"], b["target"])
    assert a["mixture"].shape == (2, 44100) and a["mixture"].dtype == torch.float32
    assert not torch.equal(ds[8]["mixture"], a["mixture"])
    silent = [i for i in range(60) if ds[i]["target"].abs().max() == 0]
    assert 0 < len(silent) < 30
    # drums are not in the manifest: a pool without them never reads a drums file
    reads = []
    orig = pool.read
    pool.read = lambda t, s, *args, **kw: (reads.append(s), orig(t, s, *args, **kw))[1]
    for i in range(30):
        ds[i]
    assert "drums" not in reads and "vocals" in reads


def test_channel_swap_mirrors_every_source_and_changes_nothing_else(noisy):
    """swap_p 1 gives the examples of swap_p 0 with left and right exchanged (every source swapped,
    every other random draw unchanged); swap_p 0.5 swaps some sources and not others."""
    m = read_manifest(noisy / "m.parquet")
    pool = FragmentPool(m, sorted(set(m.frame["track"])))
    cfg = TrainConfig(seed=2, crop_s=1.0, remix_p=0.5, silence_p=0.0)

    def examples(swap_p):
        ds = TrainExamples(pool, "vocals", replace(cfg, swap_p=swap_p), sample_rate=44100, channels=2, length=40)
        return [ds[i] for i in range(12)]

    plain, swapped, half = examples(0.0), examples(1.0), examples(0.5)
    assert any(not torch.allclose(x["target"][0], x["target"][1]) for x in plain)  # the channels differ
    for a, b in zip(plain, swapped):
        assert torch.allclose(b["target"], a["target"].flip(0)) and torch.allclose(b["mixture"], a["mixture"].flip(0))
    same = [torch.allclose(h["target"], a["target"]) for h, a in zip(half, plain)]
    assert any(same) and not all(same)
    with pytest.raises(StemcurateError, match="swap_p"):
        train_config({"swap_p": 1.5})


def test_speed_changes_pitch_and_tempo_of_every_source_together(tmp_path):
    """speed_p 1: each example plays at its drawn speed (a 440 Hz target sounds at 440 * speed, the 110 Hz
    accompaniment of the same track at 110 * speed: the sources stay together), at the crop's length;
    with speed_p 0 the speed range changes nothing."""
    from curate.scan import scan
    from tests.conftest import write_track

    sr, n = 44100, 8 * 44100
    t = np.arange(n) / sr
    tones = {"vocals": 440.0, "bass": 110.0, "drums": 1320.0}
    notes = np.sin(2 * np.pi * 1.5 * t) > -0.6  # gated, so that source activity detection finds them active
    stems = {k: np.tile(0.1 * notes * np.sin(2 * np.pi * f * t), (2, 1)).astype(np.float32) for k, f in tones.items()}
    write_track(tmp_path / "d" / "train" / "tones", stems, with_mixture=False)
    scan(tmp_path / "d", output=tmp_path / "m.parquet", score=None)
    m = read_manifest(tmp_path / "m.parquet")
    pool = FragmentPool(m, ["tones"])
    cfg = TrainConfig(seed=4, crop_s=2.0, remix_p=0.0, silence_p=0.0, gain_db=0.0, swap_p=0.0, speed_p=0.0)

    def peak_hz(x, lo, hi):
        x = x[0].numpy().astype(np.float64)
        spec = np.abs(np.fft.rfft(x * np.hanning(x.size), 16 * x.size))
        f = np.fft.rfftfreq(16 * x.size, 1 / sr)
        band = (f > lo) & (f < hi)
        return float(f[band][np.argmax(spec[band])])

    fast = TrainExamples(pool, "vocals", replace(cfg, speed_p=1.0), sample_rate=sr, channels=2, length=10)
    speeds = []
    for i in range(6):
        ex = fast[i]
        draw = np.random.default_rng([cfg.seed, i, 1])
        draw.random()  # the speed_p draw (always below 1)
        speed = float(draw.uniform(0.9, 1.1))
        speeds.append(speed)
        assert ex["target"].shape == ex["mixture"].shape == (2, 2 * sr)
        assert peak_hz(ex["target"], 300, 600) == pytest.approx(440 * speed, abs=0.5)
        assert peak_hz(ex["mixture"] - ex["target"], 60, 200) == pytest.approx(110 * speed, abs=0.5)
    assert max(speeds) - min(speeds) > 0.02
    plain = TrainExamples(pool, "vocals", cfg, sample_rate=sr, channels=2, length=10)
    off = TrainExamples(pool, "vocals", replace(cfg, speed_range=0.3), sample_rate=sr, channels=2, length=10)
    for i in range(6):
        assert torch.equal(off[i]["mixture"], plain[i]["mixture"])
        assert peak_hz(plain[i]["target"], 300, 600) == pytest.approx(440, abs=0.5)
    with pytest.raises(StemcurateError, match="speed_range"):
        train_config({"speed_range": 0.5})


@pytest.mark.parametrize("fill", [True, False])
def test_rejected_accompaniment_is_filled_from_other_tracks(noisy, fill):
    """A track whose bass and other were all rejected still gets a full accompaniment (from other
    tracks' kept bass and other) when fill_missing is on, and none of them when it is off."""
    m = read_manifest(noisy / "m.parquet")
    tracks = sorted(set(m.frame["track"]))
    lone = tracks[0]
    frame = m.frame[~((m.frame["track"] == lone) & m.frame["stem"].isin(["bass", "other"]))]
    frame = frame[(frame["stem"] != "vocals") | (frame["track"] == lone)]  # every example targets the lone track
    pool = FragmentPool(replace(m, frame=frame), tracks)
    cfg = TrainConfig(seed=0, crop_s=1.0, remix_p=0.0, silence_p=0.0, fill_missing=fill)
    ds = TrainExamples(pool, "vocals", cfg, sample_rate=44100, channels=2, length=100)
    reads = []
    orig = pool.read
    pool.read = lambda t, s, *args, **kw: (reads.append((t, s)), orig(t, s, *args, **kw))[1]
    for i in range(20):
        ds[i]
    borrowed = {s for t, s in reads if t != lone}
    own = {s for t, s in reads if t == lone}
    assert "drums" in own and "vocals" in own
    if fill:
        assert borrowed == {"bass", "other"}
    else:
        assert borrowed == set()


def test_split_tracks():
    tracks = [f"t{i}" for i in range(10)]
    train_, valid = split_tracks(tracks, TrainConfig(valid_fraction=0.2, seed=1))
    assert len(valid) == 2 and not set(valid) & set(train_) and len(train_) == 8
    assert split_tracks(tracks, TrainConfig(valid_fraction=0.2, seed=1)) == (train_, valid)
    assert split_tracks(tracks, TrainConfig(valid_tracks=["t3"]))[1] == ["t3"]
    with pytest.raises(StemcurateError, match="t99"):
        split_tracks(tracks, TrainConfig(valid_tracks=["t99"]))


def test_short_run_lowers_the_loss(noisy, tmp_path):
    m = read_manifest(noisy / "clean.parquet")
    cfg = train_config({}, **FAST, max_steps=40, lr=3e-3)
    mcfg = model_config("tiny", "bass")
    pool = FragmentPool(m, sorted(set(m.frame["track"])))
    ds = TrainExamples(
        pool, "bass", replace(cfg, silence_p=0.0, remix_p=0.0), sample_rate=44100, channels=2, length=10_000
    )
    fixed = [ds[10_000 - 1 - i] for i in range(8)]
    mix, tgt = torch.stack([x["mixture"] for x in fixed]), torch.stack([x["target"] for x in fixed])

    def loss_of(model_cfg, state):
        mod = SeparationModule(model_cfg.__dict__, cfg.__dict__)
        mod.model.load_state_dict(state)
        with torch.no_grad():
            return float(mod.example_losses(mix, tgt)[0].mean())

    torch.manual_seed(cfg.seed)
    before = loss_of(mcfg, SeparationModule(mcfg.__dict__, cfg.__dict__).model.state_dict())
    r = _train(noisy / "clean.parquet", tmp_path / "run", cfg, model=mcfg, export=tmp_path / "exp")
    assert r.global_step == 40
    after_cfg, state = read_model(r.exported)
    after = loss_of(after_cfg, state)
    assert after < 0.8 * before, (before, after)
    logs = pd.read_csv(tmp_path / "run" / "logs" / "metrics.csv")
    assert {"train/loss", "train/lr", "train/dropped"} <= set(logs.columns)
    assert (tmp_path / "exp" / "bass" / "hparams.yaml").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "hparams.yaml").is_file()


def test_resume_continues_at_the_saved_step(noisy, tmp_path):
    mcfg = model_config("tiny", "vocals")
    # an EMA decay under both runs' caps (pipelines.module.ema_decay), so that the 5-step run averages as the 8-step one
    cfg = train_config(
        {}, **{**FAST, "valid_fraction": 0.2}, max_steps=8, truncate=True, truncate_warmup=2, ema_decay=0.1
    )
    straight = _train(noisy / "m.parquet", tmp_path / "a", cfg, model=mcfg, export=tmp_path / "ea")
    first = _train(noisy / "m.parquet", tmp_path / "b", replace(cfg, max_steps=5), model=mcfg, export=tmp_path / "eb")
    assert first.global_step == 5
    with pytest.raises(StemcurateError, match="already holds a run"):
        _train(noisy / "m.parquet", tmp_path / "b", cfg, model=mcfg)
    orphan = tmp_path / "b" / "checkpoints" / ".last.ckpt.k9x2m4qa.tmp"  # a kill during a checkpoint write
    orphan.write_bytes(b"half a checkpoint")
    resumed = _train(noisy / "m.parquet", tmp_path / "b", cfg, model=mcfg, export=tmp_path / "eb", resume=True)
    assert resumed.global_step == 8
    assert not orphan.exists() and not list((tmp_path / "b").rglob("*.tmp"))
    a = torch.load(straight.last_checkpoint, weights_only=True)
    b = torch.load(resumed.last_checkpoint, weights_only=True)
    for part in ("state_dict", "current_model_state"):  # the averaged weights and the raw ones
        for k in a[part]:
            assert torch.allclose(a[part][k], b[part][k], atol=1e-5), (part, k)
    logs = pd.read_csv(tmp_path / "b" / "logs" / "metrics.csv")
    ref = pd.read_csv(tmp_path / "a" / "logs" / "metrics.csv")
    steps = lambda f: f.loc[f["train/loss"].notna(), "step"].tolist()  # noqa: E731
    assert (
        steps(logs)[:2] == steps(ref)[:2] == [1, 3] and steps(logs)[-1] == 7
    )  # rows logged before the resume are kept


def test_a_run_interrupted_mid_epoch_resumes_exactly(noisy, tmp_path):
    """Ctrl-C at step 2 (between batches), 3 (inside a batch, before its update) or 6 (during a validation)
    of 8, then --resume: the same logged training and validation losses at the same steps, and bit-equal final
    weights, as the run that was never stopped (a resumed epoch ends early, and the next one must go on from
    the step reached, not replay the examples from the step resumed at; the batch counts saved on Ctrl-C must
    be those Lightning restarts from; the average must not be saved swapped with the trained weights during a
    validation). A validation stopped by Ctrl-C is not run again: its row is the one missing."""
    import lightning as L

    from pipelines.train import TrainingInterrupted

    class CtrlC(L.Callback):
        def __init__(self, at, hook):
            self.at = at
            setattr(self, hook, self.stop)

        def stop(self, trainer, *args):
            if trainer.global_step == self.at:
                raise KeyboardInterrupt

    mcfg = model_config("tiny", "vocals")
    cfg = train_config({}, **{**FAST, "valid_fraction": 0.2, "val_every": 2}, max_steps=8, ema_decay=0.1)
    straight = _train(noisy / "m.parquet", tmp_path / "a", cfg, model=mcfg, export=tmp_path / "ea")
    ref = torch.load(straight.last_checkpoint, weights_only=True)

    def losses(run):
        logs = pd.read_csv(run / "logs" / "metrics.csv")
        return logs[["step", "train/loss", "val/loss"]].sort_values(["step", "val/loss"]).reset_index(drop=True)

    expected = losses(tmp_path / "a")
    assert expected["train/loss"].notna().sum() == 8 and expected["val/loss"].notna().sum() == 4
    for at, hook in ((2, "on_train_batch_start"), (3, "on_before_optimizer_step"), (6, "on_validation_batch_start")):
        run = tmp_path / f"stopped{at}"
        with pytest.raises(TrainingInterrupted) as stop:
            _train(noisy / "m.parquet", run, cfg, model=mcfg, export=tmp_path / f"e{at}", callbacks=[CtrlC(at, hook)])
        assert stop.value.step == at
        resumed = _train(noisy / "m.parquet", run, cfg, model=mcfg, export=tmp_path / f"e{at}", resume=True)
        assert resumed.global_step == 8
        got = torch.load(resumed.last_checkpoint, weights_only=True)
        for part in ("state_dict", "current_model_state"):
            for k in ref[part]:
                assert torch.equal(ref[part][k], got[part][k]), (at, part, k)  # bit-equal on CPU
        want = expected
        if hook == "on_validation_batch_start":  # the validation after the batch that made step 6, logged at 5
            want = expected[~((expected["step"] == at - 1) & expected["val/loss"].notna())].reset_index(drop=True)
            assert len(want) == len(expected) - 1
        pd.testing.assert_frame_equal(losses(run), want, rtol=1e-6, check_exact=False, obj=f"Ctrl-C at {at}")


def test_a_refused_export_folder_leaves_no_run_folder_behind(noisy, tmp_path):
    """--export-dir where no folder can be made (under a file): refused before training, and the run folder
    (and the parents) made for it are gone again; a folder that was there before stays."""
    (tmp_path / "file").write_text("x")
    cfg = train_config({}, **FAST, max_steps=2)
    for out in (tmp_path / "new" / "deeper" / "run", tmp_path / "run"):
        with pytest.raises(StemcurateError, match="cannot create this folder"):
            _train(noisy / "m.parquet", out, cfg, export=tmp_path / "file" / "models")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    (tmp_path / "there").mkdir()
    with pytest.raises(StemcurateError, match="cannot create this folder"):
        _train(noisy / "m.parquet", tmp_path / "there", cfg, export=tmp_path / "file" / "models")
    assert (tmp_path / "there").is_dir()


def test_truncation_drops_corrupted_more_than_clean(noisy, tmp_path):
    m = read_manifest(noisy / "m.parquet")
    flags, _ = fragment_corrupted(m)
    assert (flags == 1).sum() > 5 and (flags == 0).sum() > 5
    # ranked by the raw loss: on these sparse synth vocals an 80-step model's relative losses do not
    # tell corrupted examples apart (measured: AUROC 0.44 relative, 0.58 absolute; on rendered songs
    # with a 200-step model 0.64 relative, 0.57 absolute, see docs/benchmarks.md)
    cfg = train_config(
        {},
        **FAST,
        max_steps=80,
        lr=3e-3,
        truncate=True,
        truncate_warmup=5,
        truncate_mode="history",
        truncate_quantile=0.3,
        truncate_on="absolute",
    )
    r = _train(noisy / "m.parquet", tmp_path / "run", cfg, export=tmp_path / "e")
    d = r.dropped
    assert d["corrupted"] is not None and d["clean"] is not None
    # measured: 0.36 vs 0.22 (seeds 1, 2: 0.29 vs 0.18, 0.32 vs 0.15)
    assert d["corrupted"] > 1.3 * d["clean"], d


def test_init_from_checks_hyperparameters(noisy, tmp_path):
    cfg = train_config({}, **FAST, max_steps=2)
    r = _train(noisy / "m.parquet", tmp_path / "a", cfg, export=tmp_path / "e")
    with pytest.raises(StemcurateError, match="fc_dim"):
        _train(
            noisy / "m.parquet",
            tmp_path / "b",
            cfg,
            model=model_config("tiny", "vocals", {"fc_dim": 16}),
            init_from=r.exported,
        )
    r2 = _train(
        noisy / "m.parquet", tmp_path / "c", replace(cfg, lr=1e-4), export=tmp_path / "e2", init_from=r.exported
    )  # training-only settings may differ
    assert r2.global_step == 2


def test_cli_ddp_flags_and_bad_input(noisy, tmp_path):
    args = tiny_train(noisy / "m.parquet", export_dir=tmp_path / "e")
    res = runner.invoke(
        app, args + ["-o", str(tmp_path / "ddp"), "--accelerator", "cpu", "--devices", "1", "--strategy", "ddp"]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "e" / "vocals" / "vocals.ckpt").is_file()
    for extra, msg in [
        (["--set", "nope=1"], "unknown key"),
        (["--weighting", "bogus"], "weighting"),
        (["--set", "remix_p=2"], "remix_p"),
        (["--set", "remix_p=abc"], "remix_p must be a number (got 'abc')"),
        (["--set", "epoch_steps=2.5"], "epoch_steps must be a whole number"),
        (["--set", "fill_missing=maybe"], "fill_missing must be true or false"),
        (["--set", "fc_dim=abc"], "fc_dim"),
        (["--target", "drums", "--resume"], "not a training run folder"),
        (["--model", str(tmp_path / "missing.yaml")], "missing.yaml"),
    ]:
        res = runner.invoke(app, args + ["-o", str(tmp_path / "x"), *extra])
        assert res.exit_code == 2, (extra, res.output)
        assert msg in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "-m", str(tmp_path / "nothere.parquet"), "--model", "tiny"])
    assert res.exit_code == 2 and "manifest not found" in res.output


def test_parse_sets():
    assert parse_sets(["lr=3e-4", "bands=[[1000, 100]]", "truncate=true"]) == {
        "lr": 3e-4,
        "bands": [[1000, 100]],
        "truncate": True,
    }
    with pytest.raises(StemcurateError, match="key=value"):
        parse_sets(["lr"])


def test_workers_give_the_same_batches(noisy):
    from torch.utils.data import DataLoader

    m = read_manifest(noisy / "m.parquet")
    cfg = TrainConfig(crop_s=0.5, batch_size=2)
    ds = TrainExamples(
        FragmentPool(m, sorted(set(m.frame["track"]))), "vocals", cfg, sample_rate=44100, channels=2, length=100
    )
    sampler = StepSampler(3, 6, 2)
    plain = [b["mixture"] for b in DataLoader(ds, batch_size=2, sampler=sampler)]
    workers = [b["mixture"] for b in DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2)]
    assert len(plain) == 3 and all(torch.equal(a, b) for a, b in zip(plain, workers))


def test_ema_run_exports_averaged_weights(noisy, tmp_path):
    """The exported weights are the EMA of the raw weights after every step from the warm-up's end on
    (the first averaged step copies), computed here from the steps as they happened; the constant
    buffers (STFT window) are not averaged."""
    import lightning as L

    name = "band_split.norm_weight.0"
    seen, window = [], []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            seen.append(module.model.state_dict()[name].clone())

        def on_train_end(self, trainer, module):  # after the EMA callback put the averaged weights in place
            window.append(module.model.window.clone())

    cfg = train_config({}, **{**FAST, "warmup_steps": 2}, max_steps=12, ema_decay=0.5)
    assert ema_decay(cfg) == 0.5  # a horizon of 2 steps fits a quarter of the 10 averaged
    r = _train(noisy / "m.parquet", tmp_path / "run", cfg, target="drums", export=tmp_path / "e", callbacks=[Record()])
    assert r.global_step == 12 and r.exported.is_file() and len(seen) == 12
    expected = seen[2]  # steps 0 and 1 are the warm-up
    for raw in seen[3:]:
        expected = 0.5 * expected + 0.5 * raw
    last = torch.load(r.last_checkpoint, weights_only=True)
    averaged, current = last["state_dict"], last["current_model_state"]  # EMA weights, raw weights (for resuming)
    exported = torch.load(r.exported, weights_only=True)["state_dict"]
    assert torch.allclose(exported[name], expected, atol=1e-6)
    assert torch.equal(exported[name], averaged["model." + name])
    assert torch.equal(current["model." + name], seen[-1]) and not torch.allclose(seen[-1], expected, atol=1e-6)
    assert torch.equal(window[0], torch.hann_window(2048))


def test_validation_during_the_warm_up_sees_the_trained_weights(noisy, tmp_path):
    """Before averaging starts (the warm-up), validation scores the weights being trained, not the initial
    ones the average held until its first update (a flat validation curve through the warm-up)."""
    import lightning as L

    name = "band_split.norm_weight.0"
    raw, validated = {}, {}

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            raw[trainer.global_step] = module.model.state_dict()[name].clone()

        def on_validation_epoch_start(self, trainer, module):  # after the EMA callback swapped its weights in
            validated[trainer.global_step] = module.model.state_dict()[name].clone()

    cfg = train_config(
        {}, **{**FAST, "warmup_steps": 6, "valid_fraction": 0.2, "val_every": 2}, max_steps=14, ema_decay=0.5
    )
    assert ema_decay(cfg) == 0.5 and warmup_end(cfg) == 6
    _train(noisy / "m.parquet", tmp_path / "run", cfg, export=tmp_path / "e", callbacks=[Record()])
    assert sorted(validated) == [2, 4, 6, 8, 10, 12, 14]
    for step in (2, 4):  # warm-up: the trained weights themselves, which have moved since the start
        assert torch.equal(validated[step], raw[step]) and not torch.equal(raw[step], raw[1])
    assert not torch.equal(validated[14], raw[14])  # averaging: the average


def test_ema_horizon_fits_the_run():
    """The default decay (0.995: a 200-step horizon) holds for runs that average over 800 steps or more
    and shrinks to a quarter of the averaged steps below that; no averaging without steps to average."""
    assert TrainConfig().ema_decay == 0.995
    assert ema_decay(TrainConfig(max_steps=1000, warmup_steps=100)) == 0.995
    assert ema_decay(TrainConfig(max_steps=300, warmup_steps=100)) == pytest.approx(1 - 4 / 200)
    assert ema_decay(TrainConfig(max_steps=100, warmup_steps=100)) == 0.0
    assert ema_decay(TrainConfig(max_steps=103, warmup_steps=100)) == 0.0
    assert ema_decay(TrainConfig(max_steps=5000, ema_decay=0.0)) == 0.0
    seed = TrainConfig(schedule="seed", max_steps=1500)  # its warm-up ends at step 1000
    assert ema_decay(seed) == pytest.approx(1 - 4 / 500)


def test_a_six_channel_stem_that_the_scan_kept_trains(tmp_path):
    """Issue 20, case 3: the scan keeps a 6-channel other.wav (with a warning); training reads it by the
    same rule (its first two channels) instead of stopping mid-run."""
    from curate.scan import scan
    from tests.conftest import noise_stems, write_track

    rng = np.random.default_rng(0)
    for t in range(2):
        stems = noise_stems(rng, seconds=7.0)
        if t == 0:
            stems["other"] = np.concatenate([stems["other"]] * 3)
        write_track(tmp_path / "d" / "train" / f"t{t}", stems, with_mixture=False)
    res = scan(tmp_path / "d", output=tmp_path / "m.parquet", score=None)
    assert any(p.check == "channels" and "6 channels" in p.detail for p in res.problems.itertuples())
    m = read_manifest(tmp_path / "m.parquet")
    assert ((m.frame["track"] == "t0") & (m.frame["stem"] == "other")).any()
    ds = TrainExamples(
        FragmentPool(m, ["t0", "t1"]),
        "vocals",
        TrainConfig(seed=1, crop_s=1.0),
        sample_rate=44100,
        channels=2,
        length=40,
    )
    for i in range(40):
        item = ds[i]
        assert item["mixture"].shape == (2, 44100) and torch.isfinite(item["mixture"]).all()


def test_absurd_levels_are_caught_at_every_layer(tmp_path):
    """Issue 20, case 9: 50 ms of values near 1e29 in a float other.wav was kept by the scan (rms +554 dB),
    trained into NaN weights with exit 0, exported, and separated into NaN. Now: the scan skips the
    file ('level'); a run that still meets such audio stops with an error before the weights change
    and exports nothing; a checkpoint with non-finite weights is refused by export and loading."""
    import soundfile as sf

    from bsrnn.model import BSRNN, CheckpointError
    from curate.scan import scan
    from pipelines.train import export_model
    from tests.conftest import noise_stems, write_track

    rng = np.random.default_rng(0)
    for t in range(3):
        write_track(tmp_path / "d" / "train" / f"t{t}", noise_stems(rng, seconds=7.0), subtype="FLOAT")
    other = tmp_path / "d" / "train" / "t0" / "other.wav"
    x, sr = sf.read(other, dtype="float32")
    bad = x.copy()
    bad[44100 : 44100 + 2205] = 1e29
    sf.write(other, bad, sr, subtype="FLOAT")
    res = scan(tmp_path / "d", output=tmp_path / "m.parquet", score=None)
    p = res.problems.set_index("check")
    assert (
        p.loc["level", ["track", "stem", "severity"]].tolist() == ["t0", "other", "skipped"]
        and "+" in p.loc["level", "detail"]
    )
    assert not ((res.fragments["track"] == "t0") & (res.fragments["stem"] == "other")).any()

    sf.write(other, x, sr, subtype="FLOAT")  # scanned clean, corrupted afterwards: training meets it
    scan(tmp_path / "d", output=tmp_path / "m.parquet", score=None)
    for t in range(3):
        f = tmp_path / "d" / "train" / f"t{t}" / "vocals.wav"
        v, _ = sf.read(f, dtype="float32")
        v[:] = 1e30
        sf.write(f, v, sr, subtype="FLOAT")
    cfg = train_config({}, **FAST, max_steps=3)
    with pytest.raises(StemcurateError, match=r"step \d+: the (training loss|gradient)"):
        _train(tmp_path / "m.parquet", tmp_path / "run", cfg, export=tmp_path / "exp")
    assert not (tmp_path / "exp" / "vocals" / "vocals.ckpt").exists()

    model = BSRNN(model_config("tiny", "vocals"))
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    model.save(tmp_path / "nan.ckpt")
    with pytest.raises(CheckpointError, match="NaN/inf"):
        BSRNN.load(tmp_path / "nan.ckpt")
    with pytest.raises(CheckpointError, match="NaN/inf"):
        export_model(tmp_path / "nan.ckpt", tmp_path / "exp2")


def test_resume_refuses_a_changed_manifest_or_settings(noisy, tmp_path):
    """Issue 20, case 7: a run resumed after the manifest was re-scanned from other tracks trained on
    them without a word, and config.yaml still listed the old tracks. Resume now compares the
    manifest's fragments, the tracks and the settings with config.yaml and refuses (a longer
    --max-steps is allowed)."""
    from curate.data.schema import write_manifest

    mcfg = model_config("tiny", "vocals")
    cfg = train_config({}, **FAST, max_steps=3)
    man = tmp_path / "m.parquet"
    m = read_manifest(noisy / "m.parquet")
    write_manifest(m.frame, man, root=m.root, meta=m.meta)
    _train(man, tmp_path / "run", cfg, model=mcfg, export=tmp_path / "e")
    kept = m.frame[m.frame["track"] != sorted(set(m.frame["track"]))[0]]  # re-scanned without one track
    write_manifest(kept, man, root=m.root, meta=m.meta)
    with pytest.raises(StemcurateError, match="cannot resume.*manifest's fragments"):
        _train(man, tmp_path / "run", replace(cfg, max_steps=5), model=mcfg, export=tmp_path / "e", resume=True)
    write_manifest(m.frame, man, root=m.root, meta=m.meta)
    with pytest.raises(StemcurateError, match=r"train.lr: 0.001 -> 0.01"):
        _train(
            man, tmp_path / "run", replace(cfg, max_steps=5, lr=1e-2), model=mcfg, export=tmp_path / "e", resume=True
        )
    r = _train(man, tmp_path / "run", replace(cfg, max_steps=5), model=mcfg, export=tmp_path / "e", resume=True)
    assert r.global_step == 5


def test_every_command_takes_the_same_model_paths(noisy, tmp_path):
    """Issue 20, case 13: a run without validation writes only the documented files, and its Lightning
    checkpoint, its run folder, the exported file and its saved_models folder are one model to
    `separate -c`, `evaluate`, `--init-from` and the Python API."""
    import soundfile as sf

    from bsrnn.checkpoint import load_models
    from bsrnn.model import BSRNN

    cfg = train_config({}, **FAST, max_steps=3)
    r = _train(noisy / "m.parquet", tmp_path / "run", cfg, export=tmp_path / "e")
    written = sorted(
        str(p.relative_to(r.run_dir)) for p in r.run_dir.rglob("*") if p.is_file() and not p.parts[-2] == "tb"
    )
    assert written == [
        "checkpoints/last.ckpt",
        "config.yaml",
        "hparams.yaml",
        "logs/hparams.yaml",
        "logs/metrics.csv",
        "summary.json",
    ]

    forms = [r.run_dir, r.last_checkpoint, tmp_path / "e", tmp_path / "e" / "vocals", r.exported]
    ref = BSRNN.load(r.exported).state_dict()
    for form in forms:
        ((f, m),) = load_models(form, ["vocals"]).values()
        assert all(torch.equal(ref[k], v) for k, v in m.state_dict().items()), form
    lightning = BSRNN.load(r.last_checkpoint).state_dict()  # the API reads the Lightning layout too
    assert all(torch.equal(ref[k], v) for k, v in lightning.items())

    song = tmp_path / "song.wav"
    sf.write(song, 0.1 * np.random.default_rng(0).standard_normal((44100, 2)), 44100)
    outs = []
    for i, form in enumerate(forms):
        res = runner.invoke(app, ["separate", "-i", str(song), "-o", str(tmp_path / f"sep{i}"), "-c", str(form)])
        assert res.exit_code == 0, (form, res.output)
        outs.append(sf.read(tmp_path / f"sep{i}" / "song" / "vocals.wav")[0])
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    usdr = []
    for i, form in enumerate((r.last_checkpoint, r.exported)):
        res = runner.invoke(
            app,
            [
                "evaluate",
                str(form),
                "--data",
                str(noisy / "clean"),
                "--subset",
                "train",
                "-n",
                "1",
                "-o",
                str(tmp_path / f"res{i}.parquet"),
            ],
        )
        assert res.exit_code == 0, (form, res.output)
        usdr.append(pd.read_parquet(tmp_path / f"res{i}.parquet")["usdr"].tolist())
    assert usdr[0] == usdr[1]
    r2 = _train(noisy / "m.parquet", tmp_path / "run2", cfg, export=tmp_path / "e2", init_from=r.run_dir)
    assert r2.global_step == 3
    res = runner.invoke(
        app,
        [
            "train",
            "-m",
            str(noisy / "m.parquet"),
            "--target",
            "drums",
            "--init-from",
            str(r.last_checkpoint),
            "-o",
            str(tmp_path / "run3"),
            "--no-progress",
        ],
    )
    assert (
        res.exit_code == 2
        and "a 'vocals' model, asked for drums" in res.output
        and str(r.last_checkpoint) in res.output
    ), res.output
    (tmp_path / "e" / "bass").mkdir()
    (tmp_path / "e" / "bass" / "bass.ckpt").write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["separate", "-i", str(song), "-o", str(tmp_path / "sepx"), "-c", str(tmp_path / "e")])
    assert res.exit_code == 2 and "bass.ckpt: not a loadable checkpoint" in res.output, res.output
    res = runner.invoke(
        app, ["separate", "-i", str(song), "-o", str(tmp_path / "sepy"), "-c", str(r.exported), "-c", str(r.run_dir)]
    )
    assert res.exit_code == 2 and "a second 'vocals' model" in res.output, res.output


def test_progress_lines_where_no_terminal_shows_a_bar(noisy, tmp_path, capsys):
    """Under a pipe or a log (pytest captures stderr), training reports a line every twentieth of the
    run, at least ten steps apart, with its loss; ``progress=False`` is silent."""
    from pipelines.trainer import step_line_every

    assert [step_line_every(n) for n in (1, 4, 10, 12, 200, 201, 1000)] == [1, 4, 10, 10, 10, 10, 50]
    cfg = train_config({}, **FAST, max_steps=12)
    _train(noisy / "m.parquet", tmp_path / "a", cfg, export=tmp_path / "e", progress=True)
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.startswith("step ")]
    assert [ln.split()[1] for ln in lines] == ["10/12", "12/12"], lines
    assert err[0].startswith("vocals: tiny model (") and " examples/s (batch 4 of 1-s crops" in err[0], err[0]
    assert "12 steps take about" in err[0]
    assert all(" loss " in ln and ln.endswith(" s") for ln in lines)
    _train(noisy / "m.parquet", tmp_path / "b", cfg, export=tmp_path / "e2")
    assert "step " not in capsys.readouterr().err
    # with validation (after step 11): a line of its own, and the step line that follows carries its uSDR
    cfg = train_config({}, **{**FAST, "valid_fraction": 0.2, "val_every": 11}, max_steps=12)
    _train(noisy / "m.parquet", tmp_path / "c", cfg, export=tmp_path / "e3", progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in lines] == ["10/12", "11/12", "12/12"], lines
    assert "uSDR" not in lines[0] and " loss " not in lines[1], lines
    usdr = lines[1].split(" val uSDR ")[1].split(" dB")[0]
    assert f" val uSDR {usdr} dB" in lines[2], lines
    # validating at the last step (every 6 steps): the last line says that validation, not the one before
    cfg = train_config({}, **{**FAST, "valid_fraction": 0.2, "val_every": 6}, max_steps=12)
    _train(noisy / "m.parquet", tmp_path / "d", cfg, export=tmp_path / "e4", progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("step ")]
    assert lines[-1].startswith("step 12/12  val uSDR "), lines


def test_a_run_shorter_than_val_every_validates_at_its_end(noisy, tmp_path):
    """A 3-step run with validation every 100 steps still validates (once, at step 3): it has a best.ckpt,
    a best score and a validation row in its metrics."""
    cfg = train_config({}, **{**FAST, "valid_fraction": 0.2, "val_every": 100}, max_steps=3)
    res = _train(noisy / "m.parquet", tmp_path / "r", cfg, export=tmp_path / "e")
    assert res.valid_tracks and res.best_checkpoint.name == "best.ckpt" and res.best_checkpoint.is_file()
    assert res.best_usdr is not None and np.isfinite(res.best_usdr)
    from pipelines.runs import RunDir

    metrics = pd.read_csv(RunDir(tmp_path / "r").metrics_csv)
    assert metrics["val/usdr"].dropna().size == 1


def test_budget_estimate_and_warm_up_warning(noisy, tmp_path, capsys):
    from pipelines.budget import budget_lines, examples_per_second, schedule_warning, size_name

    mcfg = model_config("tiny", "vocals")
    torch.manual_seed(3)
    expected_next = torch.rand(3)
    torch.manual_seed(3)
    rate = examples_per_second(mcfg, batch_size=4, crop_s=0.5, seconds=0.2)
    assert torch.equal(torch.rand(3), expected_next)  # the run's random state is left as it was
    assert np.isfinite(rate) and rate > 0
    assert [size_name(model_config(s, "bass")) for s in ("tiny", "small", "medium", "paper")] == [
        "tiny",
        "small",
        "medium",
        "paper",
    ]
    assert size_name(model_config("tiny", "bass", {"fc_dim": 8})) == "custom"
    (line,) = budget_lines(mcfg, TrainConfig(max_steps=600, batch_size=4), 2.0, "cpu (2 threads)", start_step=300)
    assert "about 2.00 examples/s" in line and "300 steps take about 10 min" in line  # 300 * 4 / 2 s
    assert schedule_warning(TrainConfig(max_steps=101, warmup_steps=100)) is None
    warn = schedule_warning(TrainConfig(max_steps=100, warmup_steps=100))
    assert warn.startswith("warning: --max-steps 100 ends before the learning-rate warm-up") and "warmup_steps" in warn
    assert "warmup_epochs" in schedule_warning(TrainConfig(schedule="seed", max_steps=999))
    # pipelines train says it on stderr, progress or not
    cfg = train_config({}, **{**FAST, "schedule": "cosine", "warmup_steps": 50}, max_steps=2)
    _train(noisy / "m.parquet", tmp_path / "w", cfg, export=tmp_path / "e")
    assert "warning: --max-steps 2 ends before the learning-rate warm-up does (step 50" in capsys.readouterr().err


def test_training_precision_resolves_by_device(monkeypatch):
    """``auto`` is bf16 exactly where the device computes bfloat16 natively; an unknown precision is refused."""
    from pipelines import budget

    assert TrainConfig().precision == "auto"
    with pytest.raises(StemcurateError, match="precision must be one of auto, fp32, bf16"):
        TrainConfig(precision="fp16")
    assert budget.resolve_precision("fp32", "cpu") == "fp32" and budget.resolve_precision("bf16", "cpu") == "bf16"
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda native=native: native, raising=False)
        assert budget.native_bf16("cpu") is native
        assert budget.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert budget.native_bf16("meta") is False


def test_bf16_run_trains_under_autocast_and_keeps_float32_weights(noisy, tmp_path, capsys):
    """A bf16 run computes its steps in bfloat16 (its first loss differs from the fp32 run's, same seed and
    batch, by bfloat16's rounding, not more) and keeps and exports float32 weights."""
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = train_config({}, **FAST, max_steps=3, precision=precision)
        r = _train(noisy / "m.parquet", tmp_path / precision, cfg, export=tmp_path / f"e{precision}", progress=True)
        logs = pd.read_csv(tmp_path / precision / "logs" / "metrics.csv").dropna(subset=["train/loss"])
        losses[precision] = float(logs["train/loss"].iloc[0])
        state = torch.load(r.exported, weights_only=True)["state_dict"]
        assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
        assert f"cpu ({torch.get_num_threads()} threads), {precision}: about" in capsys.readouterr().err
    assert losses["fp32"] != losses["bf16"] and losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)


def test_presets_grow_in_size_and_cost():
    from bsrnn.model import BSRNN, SIZES

    params = [sum(p.numel() for p in BSRNN(model_config(s, "vocals")).parameters()) for s in SIZES]
    assert list(SIZES) == ["paper", "medium", "small", "tiny"] and params == sorted(params, reverse=True)


def test_a_run_from_before_the_schedule_setting_resumes_with_the_seeds(noisy, tmp_path):
    import yaml

    from pipelines.runs import RunDir

    cfg = train_config({}, **FAST, max_steps=2)
    _train(noisy / "m.parquet", tmp_path / "old", cfg, export=tmp_path / "e")
    run = RunDir(tmp_path / "old")
    data = yaml.safe_load(run.config_file.read_text())
    assert run.load_config()[1].schedule == "constant"
    for key in ("schedule", "warmup_steps", "min_lr_ratio"):
        del data["train"][key]
    run.config_file.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run.load_config()[1].schedule == "seed"
