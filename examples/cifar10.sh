#!/usr/bin/env bash
# CIFAR-10 (32x32x3, the seed material's own example) as an image-folder .zip, a MobileNetV2 0.35
# backbone trained briefly on it, pruned on a Shears server for a watch-class cortex-a55.
# Needs internet on this machine (keras.datasets downloads CIFAR-10), python with keras + pillow,
# and `shears` (pip install -e .). Settings: SHEARS_URL, SHEARS_API_KEY; N (images per class, 1000),
# EPOCHS (2), SPARSITY (0.5).
#
#   SHEARS_URL=http://127.0.0.1:8000 SHEARS_API_KEY=... examples/cifar10.sh
set -euo pipefail
: "${SHEARS_URL:?set SHEARS_URL}" "${SHEARS_API_KEY:?set SHEARS_API_KEY}"
N=${N:-1000}; EPOCHS=${EPOCHS:-2}; SPARSITY=${SPARSITY:-0.5}
work=${WORK:-cifar10-work}; mkdir -p "$work"

python - "$work" "$N" <<'PY'
import io, sys, zipfile
import keras, numpy as np
from PIL import Image

work, n = sys.argv[1], int(sys.argv[2])
(x, y), (xt, yt) = keras.datasets.cifar10.load_data()
names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
with zipfile.ZipFile(f"{work}/cifar10.zip", "w") as z:  # train/ and test/ folders, one folder per class
    for split, xs, ys, per in (("train", x, y[:, 0], n), ("test", xt, yt[:, 0], n // 5)):
        for c, name in enumerate(names):
            for i in np.flatnonzero(ys == c)[:per]:
                buf = io.BytesIO(); Image.fromarray(xs[i]).save(buf, "PNG")
                z.writestr(f"{split}/{name}/{i}.png", buf.getvalue())
# MobileNetV2 alpha 0.35 needs >= 32x32; trained from scratch here for a few epochs only.
base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
inputs = keras.Input((32, 32, 3))
model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(
    keras.layers.GlobalAveragePooling2D()(base(inputs))))
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
idx = np.concatenate([np.flatnonzero(y[:, 0] == c)[:n] for c in range(10)])
model.fit(x[idx] / 255.0, y[idx, 0], epochs=3, batch_size=64, verbose=2)
model.save(f"{work}/mobilenetv2_035.keras")
PY

# No val/ folder in the zip: val is a seeded 15% of train (options.val_fraction).
dataset=$(shears remote datasets upload -q --options '{"val_fraction": 0.15, "test_fraction": 0}' "$work/cifar10.zip")
shears remote submit --model "$work/mobilenetv2_035.keras" --data "$dataset" --sparsity "$SPARSITY" \
  --granularity channel --epochs "$EPOCHS" --device cortex-a55-1200mhz \
  --wait -o "$work/pruned.tflite" --report "$work/report.json"
