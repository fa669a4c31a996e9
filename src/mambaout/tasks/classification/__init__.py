"""Image classification: `mambaout train`, `mambaout eval`, `mambaout compare` (see docs/training.md)."""
