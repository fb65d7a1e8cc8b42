"""absl entry points, one module per binary: parse flags, call the library."""

import os

# Binaries keep TensorFlow's C++ start-up chatter (e.g. "failed call to cuInit" on CPU-only
# machines) out of the terminal; set TF_CPP_MIN_LOG_LEVEL=0 to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
