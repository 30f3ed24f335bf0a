"""The worker takes the engine's outputs as regular files and follows nothing the engine left there."""

import os
from pathlib import Path

import pytest

from workers.outputs import take_outputs
from workers.sandbox import EngineFailed

NAMES = ("model.tflite", "report.json", "plots/layers.png")


def _out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    (out / "model.tflite").write_bytes(b"TFL3" * 10)
    (out / "report.json").write_text("{}")
    (out / "plots" / "layers.png").write_bytes(b"png")
    return out


def _refused(out: Path, tmp_path: Path, **kw: int) -> str:
    with pytest.raises(EngineFailed) as caught:
        take_outputs(out, NAMES, tmp_path / "taken", **kw)
    assert caught.value.code == "engine_output_invalid"
    return caught.value.message


def test_regular_files_are_copied_out_of_the_engines_folder(tmp_path: Path) -> None:
    taken = take_outputs(_out(tmp_path), NAMES, tmp_path / "taken")
    assert taken["model.tflite"].read_bytes() == b"TFL3" * 10
    assert taken["plots/layers.png"].read_bytes() == b"png"
    assert all(p.parent == tmp_path / "taken" for p in taken.values())


def test_a_symlinked_model_tflite_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("SHEARS_SECRET_KEY=...")
    out = _out(tmp_path)
    (out / "model.tflite").unlink()
    (out / "model.tflite").symlink_to(secret)
    assert "model.tflite" in _refused(out, tmp_path)
    assert not (tmp_path / "taken" / "model.tflite").exists()


def test_a_symlinked_folder_on_the_way_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "layers.png").write_text("not the engine's")
    out = _out(tmp_path)
    for f in (out / "plots").iterdir():
        f.unlink()
    (out / "plots").rmdir()
    (out / "plots").symlink_to(elsewhere)
    assert "plots/layers.png" in _refused(out, tmp_path)


def test_an_out_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real = _out(tmp_path)
    link = tmp_path / "linked"
    link.symlink_to(real)
    _refused(link, tmp_path)


def test_hard_links_fifos_and_folders_are_refused(tmp_path: Path) -> None:
    out = _out(tmp_path)
    outside = tmp_path / "outside"
    outside.write_text("x")
    (out / "model.tflite").unlink()
    os.link(outside, out / "model.tflite")
    assert "hard link" in _refused(out, tmp_path)
    (out / "model.tflite").unlink()
    os.mkfifo(out / "model.tflite")  # opening it must not block the worker
    assert "regular" in _refused(out, tmp_path)
    (out / "model.tflite").unlink()
    (out / "model.tflite").mkdir()
    _refused(out, tmp_path)


def test_an_output_over_the_size_bound_is_refused(tmp_path: Path) -> None:
    assert "larger" in _refused(_out(tmp_path), tmp_path, max_bytes=16)


def test_a_missing_output_is_refused(tmp_path: Path) -> None:
    out = _out(tmp_path)
    (out / "report.json").unlink()
    assert "missing" in _refused(out, tmp_path)
