"""Background-noise mixing from a Speech Commands `_background_noise_` folder: kept at upload, mixed while training."""

import tarfile
from pathlib import Path

import numpy as np
import pytest

from contract.errors import PruningError
from pruning.convert import check
from pruning.datasets import load_npz
from pruning.stream import Batches, fit_input
from tests.pruning.test_dataformats import _add, _wav

OPTIONS = {"frontend": {"type": "log_mel", "frame_ms": 40, "stride_ms": 20, "mel_bins": 16}, "seed": 1}


def kws_tar(path: Path, noise: bool = True, per_class: int = 6) -> Path:
    """Two tone 'words' in the Speech Commands layout, with (or without) a folder of background noise."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    with tarfile.open(path, "w:gz") as tar:
        for label, freq in (("yes", 440.0), ("no", 1200.0)):
            for i in range(per_class):
                _add(tar, f"sc/{label}/{i}.wav", _wav(0.5 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.01, len(t))))
        if noise:
            _add(tar, "sc/_background_noise_/white.wav", _wav(rng.normal(0, 0.3, 40000)))
            _add(tar, "sc/_background_noise_/short.wav", _wav(rng.normal(0, 0.3, 4000)))
            _add(tar, "sc/_background_noise_/phone.wav", _wav(np.zeros(800), rate=8000))  # another rate: counted
        _add(tar, "sc/validation_list.txt", b"yes/0.wav\nno/0.wav\n")
        _add(tar, "sc/testing_list.txt", b"yes/1.wav\nno/1.wav\n")
    return path


def test_noise_is_kept_beside_the_training_waveforms_and_mixed_per_batch(tmp_path: Path) -> None:
    summary = check(kws_tar(tmp_path / "kws.tar.gz"), tmp_path / "out.npz", {**OPTIONS, "max_bad_fraction": 0.2})
    # 40000 samples -> pieces at 0, 8000, 16000, 24000; the short one padded: 5 segments
    assert summary["background_noise"] == {"segments": 5, "clips": 8}
    assert summary["skipped"]["count"] == 1
    assert "phone.wav" in summary["skipped"]["first"][0]
    data = load_npz(tmp_path / "out.npz")
    audio = data.x_train.audio  # type: ignore[union-attr]
    clean = Batches(data.x_train, data.y_train, 4, seed=3)[0][0]
    noisy = Batches(data.x_train, data.y_train, 4, seed=3, augment={"background_noise": 0.5})
    again = Batches(data.x_train, data.y_train, 4, seed=3, augment={"background_noise": 0.5})
    assert noisy[0][0].shape == clean.shape == (4, 49, 16, 1)
    np.testing.assert_array_equal(noisy[0][0], again[0][0])  # seeded
    assert not np.allclose(noisy[0][0], clean, atol=1e-3)  # noise raised the quiet bins
    silent = audio.batch(np.array([0, 1]), np.random.default_rng(0), 0.0)
    np.testing.assert_allclose(silent, data.x_train[np.array([0, 1])], atol=1e-3)  # volume 0: the stored features
    masked = Batches(data.x_train, data.y_train, 4, seed=3, augment={"background_noise": 0.5, "freq_mask": 4})
    assert masked[0][0].shape == clean.shape


def test_asking_for_noise_without_a_noise_folder_fails_with_the_reason(tmp_path: Path) -> None:
    check(kws_tar(tmp_path / "kws.tar.gz", noise=False), tmp_path / "out.npz", OPTIONS)
    data = load_npz(tmp_path / "out.npz")
    assert getattr(data.x_train, "audio", None) is None
    with pytest.raises(PruningError, match="_background_noise_ folder"):
        fit_input(data.x_train, data.y_train, 4, {"background_noise": 0.1})
