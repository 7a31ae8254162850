"""Pictures of samples: image grids, and scatter plots of 2-D points over the real data."""

from __future__ import annotations

import math

import matplotlib.image
import numpy as np
from matplotlib.figure import Figure


# Panels of one per-feature or per-column picture, at most (the first ones are drawn).
MAX_PANELS = 16


def subplots(rows: int = 1, columns: int = 1, *, figsize, dpi: int = 100, layout=None, **kwargs):
    """A matplotlib `Figure` and its axes, as `pyplot.subplots` gives, made without pyplot: it
    leaves the process's backend and pyplot's figures alone, saves to files anywhere and shows
    itself in a notebook."""
    figure = Figure(figsize=figsize, dpi=dpi, layout=layout)
    return figure, figure.subplots(rows, columns, **kwargs)


def figure_of_png(path: str, scale: float = 2.0):
    """The picture in the PNG file `path` as a matplotlib `Figure` (for notebooks), each pixel
    drawn as `scale` screen pixels."""
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    figure = Figure(figsize=(scale * width / 100, scale * height / 100), dpi=100)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    axes.set_axis_off()
    return figure


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tiles `(N, H, W, C)` images into one `(rows*H, columns*W, C)` image with 1-pixel gaps."""
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), images.dtype)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = 1 + row * (height + 1), 1 + column * (width + 1)
        grid[top:top + height, left:left + width] = image
    return grid


def save_image_grid(images: np.ndarray, path: str, columns: int | None = None) -> None:
    """Writes uint8 `(N, H, W, C)` images as one grid PNG, upscaled so small images stay legible."""
    grid = image_grid(images, columns)
    scale = max(1, 256 // max(grid.shape[:2]) + 1)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    if grid.shape[-1] == 1:
        matplotlib.image.imsave(path, grid[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        matplotlib.image.imsave(path, grid)


def save_scatter(points: np.ndarray, path: str, real: np.ndarray | None = None, title: str = "") -> None:
    """Writes a scatter plot of 2-D `points` (orange) over `real` points (blue)."""
    figure, axes = subplots(figsize=(5, 5), dpi=100)
    if real is not None:
        axes.scatter(real[:, 0], real[:, 1], s=4, c="tab:blue", alpha=0.3, label="real")
    axes.scatter(points[:, 0], points[:, 1], s=4, c="tab:orange", alpha=0.6, label="generated")
    axes.set_aspect("equal")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, markerscale=3, frameon=False)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path)


def save_histograms(vectors: np.ndarray, path: str, real: np.ndarray | None = None, title: str = "") -> None:
    """Writes one histogram per feature (up to 16), generated over real."""
    features = min(vectors.shape[1], MAX_PANELS)
    figure, axes = panel_grid(features)
    for index, ax in zip(range(features), axes.flat):
        if real is not None:
            ax.hist(real[:, index], bins=30, alpha=0.5, density=True, label="real")
        ax.hist(vectors[:, index], bins=30, alpha=0.5, density=True, label="generated")
        ax.set_title(f"feature {index}", fontsize=8)
    save_panels(figure, axes, title, path)


def panel_grid(count: int):
    """A figure with `count` small panels, four to a row; the spare ones are blank."""
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    figure, axes = subplots(rows, columns, figsize=(3 * columns, 2.5 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return figure, axes


def save_panels(figure, axes, title: str, path: str) -> None:
    """Legend on the first panel, the title, and the figure written to `path`."""
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)


def for_data(spec, decode, real: np.ndarray | None = None):
    """A `picture(samples, path, columns)` function suited to the data: a grid of `columns`
    images, a scatter plot of 2-D points, per-column bars and histograms of encoded table rows,
    or histograms of other vectors.

    Args:
      spec: the `DataSpec` of the data.
      decode: maps model samples to data space (`Scaling.decode`).
      real: some real examples in data space, drawn behind 2-D points and vector histograms.
    """

    blocks = spec.table_blocks

    def picture(samples: np.ndarray, path: str, columns: int | None = None) -> None:
        data = np.asarray(decode(samples))
        if blocks:
            save_table_blocks(data, blocks, path, real, title=spec.name)
        elif spec.is_image:
            images = to_uint8(data, spec.value_range)
            save_image_grid(images, path, columns)
        elif spec.shape == (2,):
            save_scatter(data, path, real, title=spec.name)
        else:
            save_histograms(data.reshape(len(data), -1), path, real, title=spec.name)

    return picture


def save_table_blocks(rows: np.ndarray, blocks, path: str, real: np.ndarray | None = None, title: str = "") -> None:
    """Writes one panel per table column (up to 16) of encoded `rows`: the category frequencies
    (each softmax block's argmax) as bars, or the standardised value as a histogram, generated
    beside real."""
    panels = list(_block_slices(blocks))[:MAX_PANELS]
    figure, axes = panel_grid(len(panels))
    for index, (ax, (kind, start, size)) in enumerate(zip(axes.flat, panels)):
        if kind == "softmax":
            positions = np.arange(size)
            for offset, (data, label) in enumerate(((real, "real"), (rows, "generated"))):
                if data is not None:
                    counts = np.bincount(np.argmax(data[:, start:start + size], axis=1), minlength=size)
                    ax.bar(positions + 0.4 * offset - 0.2, counts / max(len(data), 1), width=0.4, label=label,
                           color="tab:blue" if offset == 0 else "tab:orange", alpha=0.7)
            ax.set_xticks(positions)
        else:
            if real is not None:
                ax.hist(real[:, start], bins=30, alpha=0.5, density=True, label="real")
            ax.hist(rows[:, start], bins=30, alpha=0.5, density=True, label="generated")
        ax.set_title(f"column {index} ({kind})", fontsize=8)
    save_panels(figure, axes, title, path)


def _block_slices(blocks):
    """`(kind, first feature, size)` of each table block."""
    start = 0
    for kind, size in blocks:
        yield kind, start, int(size)
        start += int(size)


def to_uint8(images: np.ndarray, value_range) -> np.ndarray:
    """Images in `value_range` as uint8 pixels 0..255, rounded and clipped."""
    low, high = value_range
    return np.clip(np.rint((np.asarray(images, np.float32) - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)
