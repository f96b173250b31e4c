"""The four synthetic instruments of ``curate synth``, and the silence gaps between their phrases.

* drums: kick (pitch-dropping sine), snare (noise burst + tone), hi-hats (high-passed noise),
  on a 16th-note grid with per-track pattern variations and fills;
* bass: low monophonic notes (E1-E3) on the chord roots/fifths, saw-like harmonics, plucked envelope;
* vocals: a glottal-source voice (harmonics shaped by vowel formants that move per syllable),
  vibrato, consonant noise at syllable onsets, phrases with breaths;
* other: chords in the mid range from pad (detuned saws), pluck (fast-decaying harmonics) and
  organ (drawbar sines) timbres.

Each takes the track's generator ``rng``, its length ``n`` in samples, the rate ``sr`` in Hz and
the beat in seconds, and returns float ``(2, n)`` audio.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

VOWELS = {  # formant centre frequencies (Hz) and bandwidths (Hz), F1-F4
    "a": ((800, 1150, 2900, 3900), (80, 90, 120, 130)),
    "e": ((400, 1600, 2700, 3300), (60, 80, 120, 150)),
    "i": ((300, 2200, 2900, 3500), (50, 90, 120, 150)),
    "o": ((450, 800, 2830, 3500), (70, 80, 100, 130)),
    "u": ((325, 700, 2530, 3500), (50, 60, 170, 180)),
}
FORMANT_GAINS = np.array([1.0, 0.5, 0.25, 0.12])


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def scale_notes(key: int, minor: bool) -> np.ndarray:
    steps = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    return key + np.array(steps)


def _place(buf: np.ndarray, start: int, sound: np.ndarray) -> None:
    """Add ``sound`` (samples,) into ``buf`` (samples,) at ``start``, clipped at the end."""
    if start >= buf.shape[-1]:
        return
    n = min(sound.shape[-1], buf.shape[-1] - start)
    buf[start : start + n] += sound[:n]


def _env(n: int, attack: int, decay_tau: float, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    e = np.exp(-t / decay_tau)
    a = min(attack, n)
    e[:a] *= np.linspace(0.0, 1.0, a, endpoint=False)
    return e


def drums(rng, n, sr, beat, bars) -> np.ndarray:
    kick_len, snare_len, hat_len = int(0.35 * sr), int(0.25 * sr), int(0.08 * sr)
    t = np.arange(kick_len) / sr
    f = 45 + rng.uniform(60, 110) * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / rng.uniform(0.08, 0.15))
    ts = np.arange(snare_len) / sr
    sos_snare = signal.butter(2, [1000, 8000], btype="band", fs=sr, output="sos")
    snare_noise = signal.sosfilt(sos_snare, rng.standard_normal(snare_len)) * np.exp(-ts / 0.06)
    snare = 0.8 * snare_noise / (np.abs(snare_noise).max() + 1e-9) + 0.5 * np.sin(
        2 * np.pi * rng.uniform(170, 230) * ts
    ) * np.exp(-ts / 0.04)
    sos_hat = signal.butter(4, 7000, btype="high", fs=sr, output="sos")
    th = np.arange(hat_len) / sr
    hats = [signal.sosfilt(sos_hat, rng.standard_normal(hat_len)) * np.exp(-th / tau) for tau in (0.012, 0.02, 0.045)]
    sixteenth = beat / 4
    kick_pat = np.zeros(16, bool)
    kick_pat[[0, 8]] = True
    kick_pat[rng.choice([6, 10, 11, 14], size=rng.integers(0, 3), replace=False)] = True
    snare_pat = np.zeros(16, bool)
    snare_pat[[4, 12]] = True
    hat_step = int(rng.choice([1, 2]))
    out = np.zeros((2, n))
    pan_hat = rng.uniform(-0.5, 0.5)
    for bar in range(bars):
        fill = rng.random() < 0.15
        for s in range(16):
            pos = int(round(((bar * 16 + s) * sixteenth + rng.normal(0, 0.003)) * sr))  # human timing
            if pos >= n:
                break
            pos = max(0, pos)
            if kick_pat[s]:
                g = rng.uniform(0.85, 1.0)
                _place(out[0], pos, g * kick)
                _place(out[1], pos, g * kick)
            if snare_pat[s] or (fill and s >= 12 and rng.random() < 0.7):
                g = rng.uniform(0.6, 0.9)
                _place(out[0], pos, g * snare)
                _place(out[1], pos, g * snare)
            if s % hat_step == 0:
                h = hats[2] if s % 8 == 6 and rng.random() < 0.5 else hats[rng.integers(0, 2)]
                g = rng.uniform(0.25, 0.45)
                _place(out[0], pos, g * (1 - pan_hat) * h)
                _place(out[1], pos, g * (1 + pan_hat) * h)
    return out


def bass(rng, n, sr, beat, chord_roots) -> np.ndarray:
    out = np.zeros(n)
    t_beat = int(round(beat * sr))
    rhythm = rng.choice([1, 2, 4])  # notes per beat... 1: quarter, 2: eighths, 4: sixteenths sparsely
    n_harm = 8
    pos, i = 0, 0
    while pos < n:
        chord = chord_roots[(pos // (4 * t_beat)) % len(chord_roots)]
        root = 28 + (chord % 12)  # E1..D#2
        note = root + (7 if (i % 4 == 3 and rng.random() < 0.5) else 0) + (12 if rng.random() < 0.15 else 0)
        length = t_beat // rhythm if rhythm < 4 else t_beat // 2
        dur = int(length * rng.uniform(0.6, 0.95))
        tt = np.arange(dur) / sr
        f0 = _midi_hz(note)
        k = np.arange(1, n_harm + 1)[:, None]
        phases = rng.uniform(0, 2 * np.pi, size=(n_harm, 1))  # a real string never restarts in phase
        tone = np.sum(np.sin(2 * np.pi * f0 * k * tt[None] + phases) / k**1.3 * np.exp(-tt[None] * k * 2.0), axis=0)
        tone *= _env(dur, int(0.005 * sr), rng.uniform(0.25, 0.6), sr)
        tone[-int(0.01 * sr) :] *= np.linspace(1, 0, int(0.01 * sr))
        _place(out, max(0, pos + int(rng.normal(0, 0.004) * sr)), tone)  # human timing
        pos += length
        i += 1
    return np.stack([out, out])


def _formant_gain(freqs: np.ndarray, formants: np.ndarray, bws: np.ndarray) -> np.ndarray:
    """Spectral envelope at ``freqs`` (harm, samples) for per-sample formants (4, samples)."""
    g = np.zeros_like(freqs)
    for j in range(4):
        g += FORMANT_GAINS[j] / (1.0 + ((freqs - formants[j]) / (bws[j] / 2)) ** 2)
    return g


def vocals(rng, n, sr, beat, scale) -> np.ndarray:
    hop = 64  # control rate for pitch/formants; audio-rate by interpolation
    n_ctl = n // hop + 2
    f0_ctl = np.zeros(n_ctl)
    amp_ctl = np.zeros(n_ctl)
    form_ctl = np.zeros((4, n_ctl))
    bw_ctl = np.zeros((4, n_ctl))
    base = 60 + int(rng.integers(0, 12))  # C4..B4 region
    notes = np.concatenate([scale + 12 * o for o in (-1, 0, 1)]) + (base - scale[0])
    notes = notes[(notes >= 52) & (notes <= 79)]
    consonants = np.zeros(n)
    pos = int(rng.uniform(0, 0.5) * beat * sr)
    idx = len(notes) // 2
    sos_cons = signal.butter(2, 3000, btype="high", fs=sr, output="sos")
    while pos < n:
        phrase_syll = int(rng.integers(3, 9))
        for _ in range(phrase_syll):
            dur = int(beat * sr * rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
            idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(notes) - 1))
            vowel = VOWELS[rng.choice(list(VOWELS))]
            a, b = pos // hop, min((pos + dur) // hop, n_ctl)
            if a >= n_ctl:
                break
            f0_ctl[a:b] = _midi_hz(notes[idx])
            seg = b - a
            env = np.minimum(1.0, np.arange(seg) / max(1, int(0.04 * sr / hop)))
            env *= np.minimum(1.0, (seg - np.arange(seg)) / max(1, int(0.06 * sr / hop)))
            amp_ctl[a:b] = env * rng.uniform(0.7, 1.0)
            form_ctl[:, a:b] = np.asarray(vowel[0])[:, None] * rng.uniform(0.95, 1.08)
            bw_ctl[:, a:b] = np.asarray(vowel[1])[:, None]
            if rng.random() < 0.6:
                cl = int(rng.uniform(0.03, 0.08) * sr)
                burst = signal.sosfilt(sos_cons, rng.standard_normal(cl)) * np.hanning(cl) * 0.25
                _place(consonants, max(0, pos - cl // 2), burst)
            pos += dur
        pos += int(beat * sr * rng.choice([1.0, 2.0, 2.0, 4.0]))  # breath between phrases
    # smooth control curves (portamento, formant transitions) and fill unvoiced pitch
    last = np.maximum.accumulate(np.where(f0_ctl > 0, np.arange(n_ctl), 0))
    f0_ctl = np.where(f0_ctl > 0, f0_ctl, f0_ctl[last])
    f0_ctl[f0_ctl == 0] = _midi_hz(notes[len(notes) // 2])
    for j in range(4):
        lastf = form_ctl[j][last]
        form_ctl[j] = np.where(form_ctl[j] > 0, form_ctl[j], np.where(lastf > 0, lastf, 500.0 * (j + 1)))
        bw_ctl[j] = np.where(bw_ctl[j] > 0, bw_ctl[j], 100.0)
    k_smooth = np.hanning(max(3, int(0.03 * sr / hop)))
    k_smooth /= k_smooth.sum()
    f0_ctl = np.convolve(np.log(f0_ctl), k_smooth, mode="same")
    form_ctl = np.stack([np.convolve(f, k_smooth, mode="same") for f in form_ctl])
    t_ctl = np.arange(n_ctl) * hop
    t = np.arange(n)
    vib_rate, vib_depth = rng.uniform(4.8, 6.2), rng.uniform(0.015, 0.03)
    f0 = np.exp(np.interp(t, t_ctl, f0_ctl)) * (1 + vib_depth * np.sin(2 * np.pi * vib_rate * t / sr))
    amp = np.interp(t, t_ctl, amp_ctl)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = np.zeros(n)
    n_harm = 40
    block = 1 << 15
    for s0 in range(0, n, block):  # blocks keep memory bounded; vectorised inside
        s1 = min(n, s0 + block)
        if not amp[s0:s1].any():
            continue
        n_k = int(min(n_harm, 5000.0 // f0[s0:s1].min()))  # harmonics up to ~5 kHz
        k = np.arange(1, n_k + 1, dtype=np.float32)[:, None]
        fk = f0[None, s0:s1].astype(np.float32) * k
        tc = t[s0:s1]
        forms = np.stack([np.interp(tc, t_ctl, form_ctl[j]) for j in range(4)])
        bws = np.stack([np.interp(tc, t_ctl, bw_ctl[j]) for j in range(4)])
        gain = _formant_gain(fk, forms[:, None, :], bws[:, None, :]) / k**0.6
        gain *= fk < sr / 2 - 1000
        ph = np.mod(phase[None, s0:s1] * k.astype(np.float64), 2 * np.pi).astype(np.float32)
        voice[s0:s1] = np.sum(gain * np.sin(ph), axis=0)
    voice = voice * amp + consonants * (amp > 0.05)
    voice += 0.01 * signal.sosfilt(sos_cons, rng.standard_normal(n)) * amp  # breathiness
    return np.stack([voice, voice])


def _wavetable(weights: dict[int, float], size: int = 4096) -> np.ndarray:
    """One period of a harmonic waveform: ``{harmonic: amplitude}``."""
    ph = 2 * np.pi * np.arange(size) / size
    table = sum(w * np.sin(k * ph) for k, w in weights.items())
    return np.append(table, table[0])


SAW = _wavetable({k: 1.0 / k**1.5 for k in range(1, 12)})
ORGAN = _wavetable({1: 1.0, 2: 0.8, 3: 0.5, 4: 0.4, 6: 0.2, 8: 0.15})


def _osc(table: np.ndarray, freq, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Wavetable oscillator: ``n`` samples at ``freq`` Hz (scalar or per-sample array)."""
    size = len(table) - 1
    cycles = phase0 + np.cumsum(np.broadcast_to(freq, (n,))) / sr
    return np.interp((cycles % 1.0) * size, np.arange(size + 1), table)


def other(rng, n, sr, beat, progression, scale, timbres) -> np.ndarray:
    out = np.zeros((2, n))
    bar = int(round(4 * beat * sr))
    for ti, timbre in enumerate(timbres):
        pan = rng.uniform(-0.6, 0.6) if len(timbres) > 1 else rng.uniform(-0.2, 0.2)
        per_bar = int(rng.choice([4, 8]))
        for b0 in range(0, n, bar):
            degree = progression[(b0 // bar) % len(progression)]
            chord = [scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
            chord = 55 + (np.array(chord) - 55) % 12 + (12 if ti else 0)
            if rng.random() < 0.4:
                chord = np.append(chord, chord[0] + 12)
            freqs = _midi_hz(chord)
            dur = min(bar, n - b0)
            tt = np.arange(dur) / sr
            left, right = np.zeros(dur), np.zeros(dur)
            if timbre == "pad":  # detuned saws, one per channel, slow attack and release
                for f in freqs:
                    left += _osc(SAW, f * 0.994, dur, sr, rng.random())
                    right += _osc(SAW, f * 1.006, dur, sr, rng.random())
                env = np.minimum(1, tt / 0.3) * np.clip((dur / sr - tt) / 0.2, 0, 1)
                left *= env
                right *= env
            elif timbre == "organ":  # drawbars with a slight vibrato, fast attack
                vib = 1 + 0.002 * np.sin(2 * np.pi * 6 * tt)
                for f in freqs:
                    left += _osc(ORGAN, f * vib, dur, sr, rng.random())
                left *= np.minimum(1, tt / 0.01) * np.clip((dur / sr - tt) / 0.02, 0, 1)
                right = left
            else:  # pluck: harmonics decaying faster with order, re-struck per_bar times
                step = bar // per_bar
                ts = tt[:step]
                k = np.arange(1, 16)[:, None]
                note = sum(
                    np.sum(
                        np.sin(2 * np.pi * f * k * ts[None] + rng.uniform(0, 2 * np.pi, (15, 1)))
                        * np.exp(-ts[None] * (3 + 4 * k))
                        / k,
                        axis=0,
                    )
                    for f in freqs
                )
                note *= np.clip((step / sr - ts) / 0.01, 0, 1)
                for h in range(0, dur, step):
                    _place(left, h, note * rng.uniform(0.7, 1.0))
                right = left
            out[0, b0 : b0 + dur] += (1 - pan) * left
            out[1, b0 : b0 + dur] += (1 + pan) * right
    return out


def apply_gaps(rng, stems: dict, n: int, sr: int, beat: float) -> dict:
    """Mute whole bars (beats in short tracks) in about half of the stems; at most ~30% of a stem."""
    unit = int(round(4 * beat * sr))
    if n // unit < 4:
        unit = int(round(beat * sr))
    n_units = max(1, n // unit)
    gaps = {}
    for name in stems:
        if rng.random() < 0.5 or n_units < 4:
            continue
        k = int(rng.integers(1, max(2, int(0.3 * n_units)) + 1))
        units = sorted(int(b) for b in rng.choice(np.arange(1, n_units), size=min(k, n_units - 1), replace=False))
        fade = int(0.01 * sr)
        for b in units:
            a, z = b * unit, min(n, (b + 1) * unit)
            stems[name][:, a:z] = 0.0
            if a >= fade:
                stems[name][:, a - fade : a] *= np.linspace(1, 0, fade)
        gaps[name] = [[round(b * unit / sr, 3), round(min(n, (b + 1) * unit) / sr, 3)] for b in units]
    return gaps
