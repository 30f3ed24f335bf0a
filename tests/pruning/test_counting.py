"""MACs and parameters, checked against the MLPerf Tiny reference figures."""

import keras
import pytest

from pruning.architectures import MLPERF_TINY
from pruning.counting import folded_params, layer_macs, total_macs

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


def test_recurrent_and_attention_layers_count_their_macs() -> None:
    """Per step, each gate multiplies input and state by its kernels; attention counts its projections
    and its scores."""
    inputs = keras.Input((50, 6))
    x = keras.layers.Conv1D(16, 5, padding="same")(inputs)
    g = keras.layers.GRU(32, return_sequences=True, name="gru")(x)
    lstm = keras.layers.LSTM(24, name="lstm")(g)
    bi = keras.layers.Bidirectional(keras.layers.SimpleRNN(8), name="bi")(g)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Concatenate()([lstm, bi])))
    macs = {layer.name: layer_macs(layer) for layer in model.layers}
    assert macs["gru"] == 50 * 3 * 32 * (16 + 32)
    assert macs["lstm"] == 50 * 4 * 24 * (32 + 24)
    assert macs["bi"] == 2 * 50 * 8 * (32 + 8)
    query = keras.Input((10, 16))
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")
    keras.Model(query, attention(query, query))
    # q, k, v projections + scores and weighted sum + output projection
    assert layer_macs(attention) == 2 * 10 * 16 * 8 * 3 + 2 * 10 * 10 * 16 + 10 * 2 * 8 * 16
