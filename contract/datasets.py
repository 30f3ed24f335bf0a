"""The built-in datasets, as both sides name them (the engine makes them: `pruning.datasets`)."""

BUILTIN: dict[str, str] = {
    "builtin:digits": "scikit-learn's bundled 8x8 handwritten digits (real data), 10 classes, "
    "input 8x8x1 scaled to [0, 1]",
    "builtin:har": "SYNTHETIC 3-axis accelerometer windows (128 samples at 50 Hz) of 6 daily "
    "activities, generated from a seed; not recorded data",
}

# Sample shapes of the built-in datasets, to catch a mismatch before a worker is busy with it.
BUILTIN_SHAPES: dict[str, list[int]] = {"builtin:digits": [8, 8, 1], "builtin:har": [128, 3]}
