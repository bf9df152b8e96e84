"""z4 model factory: a curated Z3 snapshot becomes a gated, tracked, reproducible model."""

__version__ = "0.1.0"
