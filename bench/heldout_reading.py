"""What the held-out engine benchmark's rows show (bench/heldout.py renders it under its table)."""

READING = """Reading.
- Unstructured 3- and 5-epoch rows: re-run once (`--only unstructured --fixed-only`; default-budget rows
  not re-run, their engine is unchanged) after an engine change chosen on the tuning models alone
  (bench/unstructured_recovery.py, docs "Unstructured recovery on the tuning models"): an unstructured cut
  with set epochs gives its last round, at 80%, half of the epochs (5 epochs: rounds of 1, 1, 3 at 56, 77,
  80%, was 5 rounds of 1; 3 epochs: 1, 2 at 70, 80%, was 1, 1, 1). Points lost before -> now: ds_cnn 3
  epochs 9.0 -> 5.2, 5 epochs 6.0 -> 3.7; conv1d_gru 0.4 -> -0.2, 0.0 -> -0.7; wide_cnn -1.9 -> -2.2,
  -1.1 -> -3.0; nested_mobilenetv2 0.0 -> -1.1, -0.4 -> 0.0; mobilenetv3small -1.5 -> -1.1,
  +0.7 -> +0.0. But the dense
  models came out differently in this run (ds_cnn 94.0%, was 96.5%; nested_mobilenetv2 97.0%, was 92.2%),
  so these before -> now figures mix the change with the dense model. The paired control
  (`--paired-control ds_cnn`: both schedules on one dense model, 94.0%, results in
  bench/results/heldout_paired/) isolates it: equal rounds / half-epoch last round, 3 epochs +5.5 / +5.2,
  5 epochs +2.7 / +3.7 (6 samples worse). On the held-out ds_cnn the change does not help at 5 epochs, and the target
  (5 epochs: at most 1 point) is still missed there; it holds on the other four.
- Unstructured rows use the engine's defaults as of commit 571552f: a job that leaves `scope` and `schedule`
  unset gets one global threshold over LAMP scores and a 5-round polynomial schedule (fewer rounds when fewer
  epochs are set). These are the settings bench/engine.py (the tuning models) had measured; they were made the
  default BEFORE these rows were re-run, and nothing was changed after seeing them. With the old defaults (one
  shot, one threshold per layer) the 5-epoch rows lost: wide_cnn -3.0, conv1d_gru -1.1, ds_cnn +19.8,
  mobilenetv3small +12.6, nested_mobilenetv2 +61.3 points; now -1.1, +0.0, +6.0, +0.7, -0.4. The target
  (unstructured 80% with 5 epochs: at most 1 point) is met on 4 of 5; the DS-CNN misses it by 5 points.
- Default-budget unstructured rows: since 714a1b4 every round may stop early once back within the tolerance
  (before, only the last round could). Re-run with it (`--only unstructured --default-only`): wide_cnn 6
  epochs in 40 s (was 41 epochs, 555 s; -0.4 pts, was -2.2), conv1d_gru 8 epochs in 34 s (was 25, 92 s),
  ds_cnn 29 epochs (+2.8 pts, was +3.5); and (this session, `--models mobilenetv3small nested_mobilenetv2
  --only unstructured --default-only`) mobilenetv3small 6 epochs in 199 s (was 41 epochs, 537 s; -2.6 pts,
  was -1.9), nested_mobilenetv2 9 epochs in 226 s (was 41, 303 s; -2.6 pts, was -4.8). With the default
  budget the unstructured 80% cut is within 1 point on four of the five models (ds_cnn +2.8). All five
  default rows were run again (`--only unstructured --default-only`, idle host) after early stopping began
  to recalibrate BatchNorm before each check: the same epochs and drops on four (wide_cnn 6 epochs -0.4,
  conv1d_gru 8 -1.3, ds_cnn 29 +2.8, mobilenetv3small 6 -2.6), nested_mobilenetv2 7 epochs (was 9), -2.6;
  the table's wall times are this idle run's.
- Channel rows: re-run once (`--only channel`) after two engine changes chosen on the tuning models alone
  (bench/channel_recovery.py, docs "Channel recovery on the tuning models"): a channel cut fine-tunes at 3x
  an Adam model's compiled rate (9e-3 here), and early stopping recalibrates BatchNorm before each check
  (that one applies to unstructured default-budget rows too; they were not re-run).
  Before -> now, points lost: default budget nested_mobilenetv2 +2.6 (60 epochs) -> +0.4 (12),
  mobilenetv3small +2.2 (60) -> +0.4 (6), wide_cnn -1.1 -> +0.0, conv1d_gru +0.4 -> -0.9, ds_cnn +3.3 -> +0.8
  (40 epochs both); 3 epochs 55.0 -> 46.1, 7.4 -> 1.9, 0.4 -> 4.5, 3.1 -> 1.6, 5.0 -> 2.2; 5 epochs 46.5 ->
  27.9, 3.3 -> -1.5, -2.2 -> +0.4, 1.6 -> 0.7, 4.8 -> 2.5. Better on 12 of 15 rows; wide_cnn is worse on all
  three (default +0.0, was -1.1; 3 epochs +4.5, was +0.4; 5 epochs +0.4, was -2.2). Targets: default budget
  at most 1 point at >= 1.8x: met on 4 of 5 (was 1): conv1d_gru recovers (-0.9) but its GRU keeps it at
  1.19x; 3 epochs at most 2 points: met on mobilenetv3small (1.9) and conv1d_gru (1.6), missed on ds_cnn
  (2.2), wide_cnn (4.5) and nested_mobilenetv2 (46.1: its one-shot cut is at chance before training,
  bench/channel_diagnosis.py); pruning beats from-scratch on all 15 channel rows (ds_cnn's default row was
  -1.3, now +1.3).
  mobilenetv3small's speedups (6.2-7.3x) are not believable: its dense file measured 0.15-0.18 ms against
  0.072 ms in the previous run (pruned 0.024 against 0.029), with the 2-core host's load average above 5
  from other work; the previous run's 2.48x is the figure to use.
- All 15 channel rows: re-run once on 2026-12-07 (`--models wide_cnn nested_mobilenetv2 mobilenetv3small
  ds_cnn conv1d_gru --only channel`, 06:50-07:35 UTC, AMD EPYC, host load 2-4 on 2 cores) after one engine
  change chosen on the tuning models alone (bench/channel_recovery.py): a channel cut re-fits the layers
  reading cut channels by ridge least squares and folds BatchNorm (pruning/reconstruct.py). Points lost,
  before the re-fit -> with it (each process trains its own dense model): default budget wide_cnn +0.0 ->
  -0.7 (1 epoch), nested_mobilenetv2 +0.4 -> -2.2 (6 epochs, was 12), mobilenetv3small +0.4 -> +0.0 (8),
  conv1d_gru -0.9 -> -0.9 (4), ds_cnn +0.8 -> +2.5 (40); 3 epochs wide_cnn 4.5 -> -0.7, nested_mobilenetv2
  46.1 -> 14.1, mobilenetv3small 1.9 -> 0.4, conv1d_gru 1.6 -> -0.9, ds_cnn 2.2 -> 3.7; 5 epochs wide_cnn
  0.4 -> -1.5, nested_mobilenetv2 27.9 -> 2.2, mobilenetv3small -1.5 -> -1.1, conv1d_gru 0.7 -> -1.3,
  ds_cnn 2.5 -> 3.0. Better or equal on 12 of 15 rows, worse on ds_cnn's three (its pointwise layers are
  re-fitted; its depthwise ones stay as cut). Targets: default budget at most 1 point at >= 1.8x met on 3
  of 5 (conv1d_gru recovers but its GRU caps it at 1.21x; ds_cnn +2.5 at 2.68x); 3 epochs at most 2
  points met on 3 of 5 (missed: nested_mobilenetv2 14.1, ds_cnn 3.7); pruning beats from-scratch on 14 of
  15 rows, by 1.7-88.1 points; on ds_cnn's default row (40 epochs) scratch is 0.5 points better (95.0
  against 94.5%, 3 samples of 600). mobilenetv3small's speedups are 2.42-2.45x here (the 6.2-7.3x of the
  run before were load artefacts, see above). Nothing was tuned on these rows.
- conv1d_gru's three channel rows: re-run once on 2026-12-07 (`--models conv1d_gru --only channel`, 14:50-14:53
  UTC, AMD EPYC with AVX2, idle) after an export change decided on bench/recurrent_unroll.py (GRU, LSTM and
  SimpleRNN at 16-128 steps, not this model): float recurrent layers of at most 32 fixed steps are exported
  unrolled (pruning.export.UNROLL_STEPS; the report's `export` says so), since the WHILE loop's small ops cost
  the runtime's dispatch whatever their width. Speedup 1.21 / 1.20 / 1.20x -> 1.48 / 1.44 / 1.41x (default, 3,
  5 epochs); points lost -0.9 / -0.9 / -1.3 -> -0.2 / +0.7 / +0.4 against a dense model at 91.3% (was 90.4%;
  another process); from-scratch 84.9 / 79.6 / 84.9%, pruning wins by 6.0-11.1 points. The 1.8x target is
  still missed on this model: the unrolled GRU is 32 steps of ~17 small ops, most of its time.
- A batch of 16 for channel cuts (stop 28, 2026-12-07 18:28-18:46 UTC, AMD EPYC with AVX-512, two processes on
  2 cores): chosen on the tuning models (bench/channel_recovery.py `b16` rows: better or equal on 13 of 15
  pairs), then all 15 channel rows run once with it (`--models <m> --only channel`; rows kept in
  bench/results/heldout_batch16/, NOT in the table above, which is the engine as shipped: 64). Points lost at
  64 (table) -> 16, default / 3 / 5 epochs: nested_mobilenetv2 -2.2 / 14.1 / 2.2 -> -0.4 / 27.1 / 9.3 (dense
  90.7%); wide_cnn -0.7 / -0.7 / -1.5 -> -1.5 / -1.5 / -1.1; conv1d_gru -0.2 / +0.7 / +0.4 -> 0.0 / -1.1 /
  -0.9 (1.56-1.72x); mobilenetv3small 0.0 / 0.4 / -1.1 -> 0.4 / 0.4 / -1.1; ds_cnn 2.5 / 3.7 / 3.0 -> 0.8 /
  1.2 / 1.2 (dense 96.8%). Targets with 16: default <= 1 point at >= 1.8x on 4 of 5 (was 3: ds_cnn now
  meets it), 3 epochs <= 2 points on 4 of 5 (was 3: ds_cnn meets it, nested_mobilenetv2 misses by more);
  but the from-scratch control, trained at the same batch, beat pruning on 3 rows (wide_cnn default and 5
  epochs by 0.7, mobilenetv3small default by 0.4; was 1 row), and the transfer-learning MobileNetV2 lost 13
  and 7 points more at 3 and 5 epochs. Summed over the 15 rows, 32.8 points lost against 20.6 at 64. Not
  kept: the batch stays the job's (64 by default). Single seed and another dense model per process, so the
  per-row differences are partly noise; the decision is the held-out set's, made once, on all 15 rows.
- The channel rate re-decided (stop 29, 2026-12-07 21:24-21:52 UTC, AMD EPYC with AVX-512, two or three processes
  on 2 cores): on the five tuning models over seeds (bench/channel_recovery.py, "The rate, re-decided"), 2x the
  compiled Adam rate (6e-3 here) replaced 3x, then all 15 channel rows were run once with it (`--models <m>
  --only channel`; the table above). Points lost 3x (the rows before, stop 25) -> 2x, default / 3 / 5 epochs:
  nested_mobilenetv2 -2.2 / 14.1 / 2.2 -> -1.9 / 11.5 / 0.0 (dense 90.7%); mobilenetv3small 0.0 / 0.4 / -1.1 ->
  -0.7 / 1.1 / 0.0; wide_cnn -0.7 / -0.7 / -1.5 -> -0.7 / -1.1 / -1.9; conv1d_gru -0.2 / 0.7 / 0.4 -> 0.4 / 1.1
  / 1.3 (1.51-1.53x); ds_cnn 2.5 / 3.7 / 3.0 -> 2.3 / 4.3 / 2.8 (dense 96.8%). Summed over the 15 rows 18.5
  points lost against 20.6; better on 8 rows, worse on 6 (single seed, another dense model per process:
  one validation sample is 0.37-0.44 points). Targets: default <= 1 point at >= 1.8x on 3 of 5 (wide_cnn,
  nested_mobilenetv2, mobilenetv3small; ds_cnn 2.3 points; conv1d_gru recovers but its unrolled GRU caps it
  at ~1.5x, docs "Held-out conv1d_gru"), 3 epochs <= 2 points on 3 of 5 (missed: nested_mobilenetv2 11.5,
  ds_cnn 4.3); **pruning beats from-scratch on all 15 rows** (ds_cnn's default row by 0.3 points, was 0.5
  behind; the others by 4.5-88.1). Nothing was tuned on these rows.
- The dense accuracy differs between a model's channel and unstructured rows: they come from different runs,
  and training the dense model is not bit-for-bit repeatable across processes; each drop is against its own
  dense model. The nested MobileNets' channel rows were re-run after a fix they prompted (an earlier
  session), so they are not strictly held out; the channel rows' first run in this session crashed in this
  file (a one-shot report has no `steps`) before printing any figure, and was started again. Single seed;
  wall time on a 2-core machine shared with other work.
"""
