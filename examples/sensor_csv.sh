#!/usr/bin/env bash
# Sensor recordings as CSV: one row per sample, channel columns, a label column (and optionally a
# `split` column with train/val/test, a recording column for `group`). Windowed at upload by
# `window` and `stride` (samples); rows with missing values are skipped and counted; a label that
# is in val/test but not in train is refused.
#
#   SHEARS_URL=... SHEARS_API_KEY=... examples/sensor_csv.sh wrist.csv   # ax,ay,az,ppg,label
set -euo pipefail
csv=${1:?give the CSV file}
shears remote datasets upload --options \
  '{"format": "csv", "label": "label", "channels": ["ax", "ay", "az"], "window": 128, "stride": 64, "group": "recording"}' \
  "$csv"
