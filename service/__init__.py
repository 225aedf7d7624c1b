"""Digits inference service: a FastAPI app serving a LiteRT digit classifier.

Nothing in this package may import TensorFlow or Keras: the serving image has neither.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("digits")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
