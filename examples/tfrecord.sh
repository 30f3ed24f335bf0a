#!/usr/bin/env bash
# TFRecord shards of tf.train.Example, with the feature spec you would give tf.io.parse_single_example:
# one input feature and the label. A .zip/.tar of shards (names with train/val/test choose the split) or
# one .tfrecord file. Records that lack a feature or have another dtype or length are counted and named.
#
#   SHEARS_URL=... SHEARS_API_KEY=... examples/tfrecord.sh shards.zip
set -euo pipefail
shards=${1:?give a .tfrecord file or a .zip/.tar of shards}
shears remote datasets upload --options '{"format": "tfrecord", "label": "label", "features": {
  "image": {"dtype": "string", "shape": [96, 96, 3], "decode": "image"},
  "label": {"dtype": "int64", "shape": []}}}' "$shards"
