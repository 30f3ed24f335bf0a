"""Nested models as the one graph they are.

A transfer-learning model calls a whole Keras model as one of its layers
(`Sequential([MobileNetV2(include_top=False), GlobalAveragePooling2D(), Dense(n)])`, or a
functional model that calls a backbone). To the channel analysis such a call is one opaque layer;
`flatten` replays the outer graph and every nested graph inside it, at any depth, with copies of
the leaf layers and their weights, so the result is one functional model with the same
computation (the same TFLite ops once exported: nesting does not exist in a `.tflite`).
"""

from typing import Any

import keras
import numpy as np

from contract.errors import PruningError


def nested_models(model: keras.Model) -> list[str]:
    """Names of the Keras models called as layers inside `model`, at any depth."""
    return [
        layer.name
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.Model)
    ]


def _graph(model: keras.Model) -> Any:
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_run_through_graph"):
        raise PruningError(
            "unsupported_model",
            f"the nested model {model.name!r} has no graph to follow (a Sequential built without an input shape, "
            "or a subclassed model); build it with an Input before saving",
        )
    return graph


def flatten(model: keras.Model) -> tuple[keras.Model, list[str]]:
    """`model` with every nested model inlined; returns (model, names of the inlined models).

    A model without nested models is returned as it is. Leaf layers are copied (config and
    weights), so the uploaded model is left untouched; a name that two nested models share gets a
    suffix, since one functional graph needs unique names.
    """
    inlined = nested_models(model)
    if not inlined:
        return model, []
    copies: dict[int, tuple[keras.layers.Layer, keras.layers.Layer]] = {}
    taken: set[str] = set()

    def copy(layer: keras.layers.Layer) -> keras.layers.Layer:
        if id(layer) not in copies:
            config = layer.get_config()
            name, k = config.get("name", layer.name), 1
            while config.get("name", name) in taken:
                config["name"] = f"{name}_{k}"
                k += 1
            taken.add(config.get("name", name))
            copies[id(layer)] = (layer, type(layer).from_config(config))
        return copies[id(layer)][1]

    def operation(op: Any) -> Any:
        if isinstance(op, keras.Model):
            inner = _graph(op)

            def call(*args: Any, **kwargs: Any) -> Any:
                return inner._run_through_graph(args[0] if len(args) == 1 else list(args), operation_fn=operation)

            return call
        if isinstance(op, keras.layers.Layer):
            return copy(op)
        return op  # a keras.ops operation (`x + 3.0`): stateless, reused as it is

    outer = _graph(model)
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in outer.inputs]
    try:
        outputs = outer._run_through_graph(inputs[0] if len(inputs) == 1 else inputs, operation_fn=operation)
        flat = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=model.name)
    except (ValueError, TypeError) as exc:
        raise PruningError("unsupported_model", f"the nested model could not be followed as one graph: {exc}") from exc
    for old, new in copies.values():
        weights = [np.asarray(w) for w in old.get_weights()]
        if weights:
            new.set_weights(weights)
        # A backbone frozen for transfer learning is trained again: its channels are cut too.
        new.trainable = True
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:  # what it was compiled with, for fine-tuning's learning rate (pruning.recipe)
        flat.compile(optimizer=type(optimizer).from_config(optimizer.get_config()), loss=model.loss)
    return flat, inlined
