"""Where data comes from and how it flows: sources, embedded datasets, the tf.data pipeline."""

from synthblend.datasets.sources import DataSpec, load

__all__ = ["DataSpec", "load"]
