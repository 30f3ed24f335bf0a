"""The Shears pruning engine: a plain library (TensorFlow/Keras/NumPy), no HTTP, database or Celery.

Importing this package is cheap; TensorFlow is imported by the modules that need it.
"""

import os

# TF 2.21's oneDNN kernels corrupt the heap when training a 1x1 stride-2 Conv2D on a narrow
# input (what channel removal makes of ResNet shortcuts; seen in bench/engine.py), and make
# results depend on the CPU. The engine runs without them; set before TensorFlow is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
