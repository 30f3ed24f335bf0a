"""The job spec: one definition of every field, default and rule, for the API, the CLI, the client and the engine."""

LATENCY_NEEDS_CHANNELS = (
    "a latency_ms target needs granularity channel: zeroed weights (unstructured, n_of_m) stay in a dense "
    "runtime's kernels and do not make it faster (TFLite Micro has no sparse kernels; XNNPACK's sparse path "
    "needs float weights stored sparse and mostly-zero 1x1 convolutions), so only removed channels lower "
    "the estimated latency"
)
