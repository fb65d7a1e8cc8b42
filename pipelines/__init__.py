"""Pipeline definitions that users copy and edit; run them with ``llm_pipeline --pipeline=FILE``."""
