"""Recipes: absl flagfiles, one per model x dataset x settings (`synthblend-train --recipe=<name>`)."""
