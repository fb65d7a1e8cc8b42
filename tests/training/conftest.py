"""Settings for training tests (the prepared sample fixture is in tests/conftest.py)."""

#: Overrides that make the tiny encoder fast on the sample.
FAST = "task.data.seq_length=32,task.data.global_batch_size=16,task.data.eval_batch_size=16"

