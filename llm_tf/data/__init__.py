"""Data layer: readers, bad-row policy, splits, TFRecords, statistics, schema, validation."""
