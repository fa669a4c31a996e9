"""Training tasks built on :mod:`mambaout.engine` (classification; detection/segmentation to come)."""
