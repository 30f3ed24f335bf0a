"""pruning.host.measure_latency times one-thread inference by the thread's CPU time: another process on the
same core does not inflate the figure (it did: the estimator's calibration and its check were wall-clock
medians, and a loaded 2-core host read large models up to 2x slow). Real LiteRT on a small model."""

import multiprocessing
import os

import keras
import numpy as np
import pytest

from pruning.export import to_tflite
from pruning.host import measure_latency

L = keras.layers


def _model_tflite() -> bytes:
    """A few milliseconds an inference here, longer than a scheduler slice is shared in."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((48, 48, 32)), L.Conv2D(64, 3, padding="same"), L.Conv2D(64, 3, padding="same")]
    )
    return to_tflite(model, "none", np.zeros((1, 48, 48, 32), np.float32))


def _spin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    while True:
        pass


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_a_process_on_the_same_core_does_not_inflate_the_measured_latency() -> None:
    tflite = _model_tflite()
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        alone = measure_latency(tflite, runs=15)
        rival = multiprocessing.get_context("fork").Process(target=_spin, args=(cpu,), daemon=True)
        rival.start()
        try:
            shared = measure_latency(tflite, runs=15)
        finally:
            rival.kill()
            rival.join()
    finally:
        os.sched_setaffinity(0, before)
    assert alone["clock"] == shared["clock"] == "thread_cpu"
    # the core was shared: the wall clock saw it, the thread's CPU time did not
    assert shared["wall_ms"] > 1.3 * shared["measured_ms"], shared
    assert shared["measured_ms"] < 1.3 * alone["measured_ms"], (alone, shared)


def test_several_threads_are_timed_by_the_wall_clock() -> None:
    """Pool threads' work is not on the calling thread's CPU clock."""
    keras.utils.set_random_seed(0)
    tflite = to_tflite(keras.Sequential([keras.Input((8,)), L.Dense(4)]), "none", np.zeros((1, 8), np.float32))
    two = measure_latency(tflite, threads=2, runs=5)
    assert two["clock"] == "wall"
    assert two["measured_ms"] == two["wall_ms"]
    one = measure_latency(tflite, runs=5)
    assert one["batch"] > 1  # microseconds an inference: timed in batches, the clock read once a batch
    assert one["runs"] == 5 * one["batch"]
