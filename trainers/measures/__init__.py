"""Measures of synthetic data against the real data it imitates, in one place.

- `features`: between sets of feature vectors: Fréchet distance, KID, precision/recall,
  density/coverage, classifier score, class histograms, distance to the closest record, mode
  coverage, code correlations.
- `tables`: between decoded tables: column shapes, pair trends, train-on-synthetic
  test-on-real, distance to the closest record on encoded rows, and their pictures.
- `classifier`: the small domain classifier whose features and predictions the image
  measures use, and best-matching accuracy of unsupervised clusters.

`synthblend.trainers.evaluate` puts them together into the report beside their real-vs-real
floors.
"""

from synthblend.trainers.measures import classifier, features, tables

__all__ = ["classifier", "features", "tables"]
