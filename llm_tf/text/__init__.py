"""Text: vocabulary training and in-graph tokenizers built on tensorflow-text."""
