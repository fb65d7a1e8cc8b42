"""Export: SavedModel signatures, TFLite conversion and evaluation."""
