"""``python -m benchmarks``: runs every benchmark (see :mod:`benchmarks.run_all`)."""

from benchmarks.run_all import main

main()
