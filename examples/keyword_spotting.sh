#!/usr/bin/env bash
# Keyword spotting in the Speech Commands layout: class folders of 1 s, 16 kHz WAV clips, with
# validation_list.txt / testing_list.txt at the top (honoured) and _background_noise_/ (not a class: kept as noise
# for a job that asks for "finetune": {"augment": {"background_noise": 0.1, "time_shift": 0.1, "time_mask": 5}}).
# Turned into 49x10 MFCC at upload (the MLPerf Tiny KWS input: 40 ms frames, 20 ms stride, 40 mel bins,
# 10 coefficients); the resolved front end is in the dataset's summary and in every job report
# (`input.frontend`), so the device side computes the same features.
#
#   SHEARS_URL=... SHEARS_API_KEY=... examples/keyword_spotting.sh speech_commands/
set -euo pipefail
folder=${1:?give the Speech Commands folder}
tar_file=$(mktemp --suffix .tar)
tar -cf "$tar_file" -C "$folder" .
shears remote datasets upload --options \
  '{"frontend": {"type": "mfcc", "sample_rate": 16000, "clip_ms": 1000, "frame_ms": 40, "stride_ms": 20, "mel_bins": 40, "bins": 10}}' \
  "$tar_file"
