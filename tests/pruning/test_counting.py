"""MACs and parameters, checked against the MLPerf Tiny reference figures."""

import pytest

from pruning.architectures import MLPERF_TINY
from pruning.counting import folded_params, total_macs

# shared/reference/mlperf-tiny-models.md: MACs and params (w+b) of the shipped int8 files.
REFERENCE = {
    "kws_dscnn": (2_656_768, 22_604),
    "vww_mobilenet_v1": (7_489_664, 210_850),
    "ic_resnet8": (12_501_632, 77_706),
    "ad_autoencoder": (264_192, 265_864),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_mlperf_tiny_counts_match_the_reference(name: str) -> None:
    model = MLPERF_TINY[name]()
    macs, params = REFERENCE[name]
    assert total_macs(model) == macs
    assert folded_params(model) == params
