"""Convert the MTT_musicnn checkpoint of the ``musicnn`` 0.1.0 wheel to float16 safetensors.

Run once, in a throwaway virtual environment (TensorFlow is never a dependency of stemcurate):

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "numpy<2" "librosa==0.10.2.post1" safetensors
    /tmp/tfvenv/bin/pip download --no-deps musicnn==0.1.0 -d /tmp/mnn && (cd /tmp/mnn && unzip -q
    musicnn-0.1.0-py3-none-any.whl)
    PYTHONPATH=/tmp/mnn /tmp/tfvenv/bin/python scripts/convert_musicnn.py /tmp/mnn/musicnn

Writes ``curate/assets/musicnn_mtt.safetensors`` (the network's inference weights, float16, in
PyTorch layouts: see :mod:`curate.scoring.musicnn`), ``curate/assets/MUSICNN_LICENSE.md`` (the wheel's ISC
notice) and ``tests/data/musicnn_reference.npz``: the original TensorFlow model's tags, penultimate
layer and pooled features on :func:`reference_signal`, whose log-mel spectrogram librosa computes
here in float32, with the float32 weights.

Traps of the original that this script avoids (and the port does not repeat):
* the wheel's ``checkpoint`` file points to its author's home folder: the variables are read from
  the checkpoint prefix ``MTT_musicnn/`` directly;
* ``musicnn.extractor`` restores inside a bare ``except`` that hides a failed restore (the model then
  runs with random weights): here every variable is checked and a failure stops the script;
* ``musicnn.extractor`` casts the mel power to float16 before ``log10(10000 x + 1)``, which overflows
  to inf on loud stems: the reference uses float32 throughout.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SR, N_FFT, HOP, N_MELS = 16000, 512, 256, 96
PATCH_FRAMES = 187

# TensorFlow variable -> (name in curate.scoring.musicnn.MusiCNN's state dict, how to reorder it for PyTorch)
# conv2d kernels are [kh, kw, in, out] in TF; Conv2d wants [out, in, kh, kw]; the mid-end convolutions
# span all features of their input and become Conv1d [out, in, kh].
_CONV2D = lambda k: np.transpose(k, (3, 2, 0, 1))  # noqa: E731
_CONV1D = lambda k: np.transpose(k[:, :, 0, :], (2, 1, 0))  # noqa: E731
_DENSE = lambda k: k.T  # noqa: E731
_SAME = lambda k: k  # noqa: E731

LAYERS = {
    "conv2d": ("timbral74.conv", _CONV2D),
    "conv2d_1": ("timbral77.conv", _CONV2D),
    "conv2d_2": ("temporal.0.conv", _CONV2D),
    "conv2d_3": ("temporal.1.conv", _CONV2D),
    "conv2d_4": ("temporal.2.conv", _CONV2D),
    "conv2d_5": ("mid.0.conv", _CONV1D),
    "conv2d_6": ("mid.1.conv", _CONV1D),
    "conv2d_7": ("mid.2.conv", _CONV1D),
    "dense": ("dense", _DENSE),
    "dense_1": ("output", _DENSE),
}
BATCH_NORMS = {
    "batch_normalization": "bn_input",
    "batch_normalization_1": "timbral74.bn",
    "batch_normalization_2": "timbral77.bn",
    "batch_normalization_3": "temporal.0.bn",
    "batch_normalization_4": "temporal.1.bn",
    "batch_normalization_5": "temporal.2.bn",
    "batch_normalization_6": "mid.0.bn",
    "batch_normalization_7": "mid.1.bn",
    "batch_normalization_8": "mid.2.bn",
    "batch_normalization_9": "pool_bn",
    "batch_normalization_10": "dense_bn",
}
_BN_FIELDS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def reference_signal() -> np.ndarray:
    """6 s of deterministic test audio at 16 kHz, float32 ``(samples,)``, no random generator.

    Second 0-3: a harmonic tone with vibrato over a rising chirp, with clicks every 0.25 s (quiet);
    second 3-6: a loud chord of square-ish tones and a low bass line (peak near full scale, the level
    at which the original float16 front end overflows).
    """
    t = np.arange(6 * SR) / SR
    out = np.zeros_like(t)
    a = t < 3
    f0 = 220 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    out += a * 0.05 * sum(np.sin(k * phase) / k for k in range(1, 8))
    out += a * 0.03 * np.sin(2 * np.pi * (100 * t + 300 * t**2))
    clicks = (np.mod(t, 0.25) < 0.004) * np.exp(-np.mod(t, 0.25) * 800) * np.cos(2 * np.pi * 3000 * t)
    out += a * 0.2 * clicks
    b = ~a
    for f in (261.63, 329.63, 392.0):
        out += b * 0.25 * np.tanh(4 * np.sin(2 * np.pi * f * t))
    out += b * 0.2 * np.sin(2 * np.pi * (55 + 55 * (np.mod(t, 1) > 0.5)) * t)
    return (0.98 * out / np.abs(out).max()).astype(np.float32)


def read_weights(prefix: str) -> dict[str, np.ndarray]:
    """The inference variables of the checkpoint at ``prefix``, renamed and reordered; fails loudly."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    shapes = reader.get_variable_to_shape_map()
    out = {}
    for tf_name, (name, reorder) in LAYERS.items():
        out[f"{name}.weight"] = reorder(reader.get_tensor(f"{tf_name}/kernel"))
        out[f"{name}.bias"] = reader.get_tensor(f"{tf_name}/bias")
    for tf_name, name in BATCH_NORMS.items():
        for tf_field, field in _BN_FIELDS.items():
            out[f"{name}.{field}"] = reader.get_tensor(f"{tf_name}/{tf_field}")
    used = (
        {f"{n}/kernel" for n in LAYERS}
        | {f"{n}/bias" for n in LAYERS}
        | {f"{n}/{f}" for n in BATCH_NORMS for f in _BN_FIELDS}
    )
    left = sorted(k for k in shapes if k not in used and "Adam" not in k and not k.startswith("beta"))
    if left:
        raise SystemExit(f"{prefix}: unexpected variables {left}")
    for k, v in out.items():
        if not np.all(np.isfinite(v)):
            raise SystemExit(f"{prefix}: {k} is not finite")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def log_mel(audio: np.ndarray) -> np.ndarray:
    """``log10(10000 mel + 1)`` as musicnn computes it, but in float32: ``(frames, 96)``."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS, pad_mode="reflect"
    ).T
    return np.log10(10000 * mel.astype(np.float32) + 1).astype(np.float32)


def reference_outputs(prefix: str, audio: np.ndarray) -> dict[str, np.ndarray]:
    """Tags, penultimate layer and pooled features of the original TensorFlow graph, one row per 3-s patch."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    from musicnn import models

    spec = log_mel(audio)
    patches = np.stack([spec[i : i + PATCH_FRAMES] for i in range(0, len(spec) - PATCH_FRAMES + 1, PATCH_FRAMES)])
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, PATCH_FRAMES, N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        logits, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(x, is_training, "MTT_musicnn", 50)
    graph = tf.compat.v1.get_default_graph()
    flat = graph.get_tensor_by_name("model/flatten/Reshape:0")  # max/mean interleaved, as the back end sees it
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, prefix)  # raises on any missing or mis-shaped variable
        tags, pen, pooled = sess.run(
            [tf.nn.sigmoid(logits), penultimate, flat], feed_dict={x: patches, is_training: False}
        )
    return {
        "audio_sample_rate": np.array(SR),
        "log_mel": spec.astype(np.float32),
        "tags": tags,
        "penultimate": pen,
        "pooled": pooled,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path, help="the unpacked musicnn package folder (holds MTT_musicnn/ and models.py)")
    ap.add_argument("--out", type=Path, default=REPO / "curate" / "data" / "musicnn_mtt.safetensors")
    ap.add_argument("--reference", type=Path, default=REPO / "tests" / "data" / "musicnn_reference.npz")
    args = ap.parse_args()
    from safetensors.numpy import save_file

    prefix = str(args.package / "MTT_musicnn") + "/"
    weights = read_weights(prefix)
    save_file(
        {k: v.astype(np.float16) for k, v in weights.items()},
        str(args.out),
        metadata={"source": "musicnn 0.1.0 (PyPI wheel), MTT_musicnn", "licence": "ISC, see MUSICNN_LICENSE.md"},
    )
    licence = args.package.parent / "musicnn-0.1.0.dist-info" / "LICENSE.md"
    shutil.copyfile(licence, args.out.parent / "MUSICNN_LICENSE.md")
    ref = reference_outputs(prefix, reference_signal())
    ref.pop("log_mel")
    args.reference.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.reference, **ref)
    n = sum(v.size for v in weights.values())
    print(
        f"{args.out}: {len(weights)} tensors, {n} parameters, {args.out.stat().st_size / 1e6:.2f} MB", file=sys.stderr
    )
    print(
        f"{args.reference}: tags {ref['tags'].shape}, penultimate {ref['penultimate'].shape}, pooled "
        f"{ref['pooled'].shape}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
