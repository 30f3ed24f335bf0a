"""Audio front ends (log-mel, MFCC) in NumPy, declared by a dict the device side can reproduce.

The dataset's options choose one (`{"type": "mfcc", "frame_ms": 40, "stride_ms": 20, "bins": 10}`
is the MLPerf Tiny keyword-spotting input, 49x10 for a one-second clip at 16 kHz); `resolve`
fills in every parameter, and that full dict goes into the dataset and the job report.
"""

from typing import Any

import numpy as np
from numpy.typing import NDArray

from contract.errors import PruningError

DEFAULTS: dict[str, Any] = {
    "type": "mfcc",
    "sample_rate": 16000,
    "clip_ms": 1000,
    "frame_ms": 40,
    "stride_ms": 20,
    "mel_bins": 40,
    "bins": 10,
    "lower_hz": 20.0,
    "upper_hz": 4000.0,
    "window": "hann",
    "log_offset": 1e-6,
    "mel_scale": "htk",
}


def resolve(options: dict[str, Any] | None) -> dict[str, Any]:
    """The full front end: defaults, the caller's choices, and the derived sizes in samples."""
    fe = {**DEFAULTS, **(options or {})}
    unknown = sorted(set(fe) - set(DEFAULTS) - {"frame_length", "frame_step", "fft_length", "frames", "clip_samples"})
    if unknown:
        raise PruningError("invalid_dataset", f"unknown front-end options: {', '.join(unknown)}")
    if fe["type"] not in ("mfcc", "log_mel"):
        raise PruningError("invalid_dataset", f"front end {fe['type']!r}: choose mfcc or log_mel")
    try:
        rate = int(fe["sample_rate"])
        fe["frame_length"] = int(rate * float(fe["frame_ms"]) / 1000)
        fe["frame_step"] = int(rate * float(fe["stride_ms"]) / 1000)
        clip = int(rate * float(fe["clip_ms"]) / 1000)
        mel_bins, bins = int(fe["mel_bins"]), int(fe["bins"])
    except (TypeError, ValueError) as exc:
        raise PruningError("invalid_dataset", f"front-end options must be numbers: {exc}") from exc
    if not (0 < fe["frame_step"] <= fe["frame_length"] <= clip) or mel_bins < 1 or rate < 1000:
        raise PruningError("invalid_dataset", "front end: need 0 < stride <= frame <= clip and mel_bins >= 1")
    if fe["type"] == "mfcc" and not 1 <= bins <= mel_bins:
        raise PruningError("invalid_dataset", "front end: MFCC bins must be between 1 and mel_bins")
    if not 0 <= float(fe["lower_hz"]) < float(fe["upper_hz"]) <= rate / 2:
        raise PruningError("invalid_dataset", "front end: need 0 <= lower_hz < upper_hz <= sample_rate / 2")
    fe["fft_length"] = 1 << (fe["frame_length"] - 1).bit_length()
    fe["frames"] = 1 + (clip - fe["frame_length"]) // fe["frame_step"]
    fe["clip_samples"] = clip
    return fe


def output_shape(fe: dict[str, Any]) -> tuple[int, int, int]:
    return (fe["frames"], fe["bins"] if fe["type"] == "mfcc" else fe["mel_bins"], 1)


def _hz_to_mel(hz: NDArray[Any]) -> NDArray[Any]:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def mel_matrix(fe: dict[str, Any]) -> NDArray[Any]:
    """Triangular HTK mel filters, (fft_length // 2 + 1, mel_bins)."""
    n_fft, rate, n_mel = fe["fft_length"], fe["sample_rate"], fe["mel_bins"]
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lo, hi = _hz_to_mel(np.array(float(fe["lower_hz"]))), _hz_to_mel(np.array(float(fe["upper_hz"])))
    edges = 700.0 * (10 ** (np.linspace(lo, hi, n_mel + 2) / 2595.0) - 1.0)
    mel = _hz_to_mel(freqs)
    edges_mel = _hz_to_mel(edges)
    left, centre, right = edges_mel[:-2], edges_mel[1:-1], edges_mel[2:]
    up = (mel[:, None] - left[None]) / (centre - left)[None]
    down = (right[None] - mel[:, None]) / (right - centre)[None]
    weights: NDArray[Any] = np.maximum(0.0, np.minimum(up, down)).astype(np.float32)
    return weights


def dct_matrix(n_in: int, n_out: int) -> NDArray[Any]:
    """Orthonormal DCT-II, (n_in, n_out)."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    m = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    m[:, 0] /= np.sqrt(2.0)
    matrix: NDArray[Any] = m.astype(np.float32)
    return matrix


class FrontEnd:
    """Turns a clip (float samples in [-1, 1]) into the declared features, (frames, bins, 1)."""

    def __init__(self, fe: dict[str, Any]) -> None:
        self.fe = fe
        self.window = np.hanning(fe["frame_length"] + 1)[:-1].astype(np.float32)
        self.mel = mel_matrix(fe)
        self.dct = dct_matrix(fe["mel_bins"], fe["bins"]) if fe["type"] == "mfcc" else None

    def __call__(self, clip: NDArray[Any]) -> NDArray[Any]:
        fe = self.fe
        n = fe["clip_samples"]
        clip = np.pad(clip[:n], (0, max(0, n - len(clip))))
        frames = np.lib.stride_tricks.sliding_window_view(clip, fe["frame_length"])[:: fe["frame_step"]]
        frames = frames[: fe["frames"]] * self.window
        power = np.abs(np.fft.rfft(frames, fe["fft_length"])) ** 2 / fe["fft_length"]
        feats = np.log(power.astype(np.float32) @ self.mel + float(fe["log_offset"]))
        if self.dct is not None:
            feats = feats @ self.dct
        features: NDArray[Any] = feats.astype(np.float32)[..., None]
        return features
