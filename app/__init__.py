"""Shears HTTP layer and domain. Never imports TensorFlow or `workers`."""
