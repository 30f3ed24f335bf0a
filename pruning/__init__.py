"""The Shears pruning engine: a plain library (TensorFlow/Keras/NumPy), no HTTP, database or Celery.

Importing this package is cheap; TensorFlow is imported by the modules that need it.
"""
