"""synthblend: synthesize training data with generative models and blend it with real data.

    import synthblend as sb
    synth = sb.Synthesizer("dcgan", conditional=True, discriminator_depth=3)
    synth.fit("shapes", steps=3000, model_dir="runs/shapes")
    images, labels = synth.sample(16, labels=[0, 1, 2, 3] * 4, seed=0)

`Synthesizer`, `blend` and `load_data` are the API (`synthblend.trainers.synthesizer`); `models()` and
`recipes()` list what there is. `Stopped` (a KeyboardInterrupt) ends a `fit` stopped by SIGTERM or
Ctrl-C after saving the step reached. The subpackages are `synthblend.zoo` (models),
`synthblend.datasets` (sources, pipeline, blending) and `synthblend.trainers` (the training loop,
measures, commands). Importing the package changes nothing in the process: no matplotlib
backend, no logging or flags, no file descriptors or environment variables.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Synthesizer", "blend", "load_data", "models", "recipes", "recipe_path", "Stopped"]

_API = {name: "synthblend.trainers.synthesizer" for name in ("Synthesizer", "blend", "load_data")}
_API["Stopped"] = "synthblend.trainers.lifecycle"


def __getattr__(name: str):
    # TensorFlow loads with the API, not with the package, so `python -m synthblend <command>`
    # can quiet TensorFlow's start-up first.
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'synthblend' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])


def models() -> list[str]:
    """The registered model names."""
    from synthblend import zoo

    return zoo.names()


def recipes() -> list[str]:
    """The recipes shipped with the package, by name (`synthblend-train --recipe=<name>`)."""
    from synthblend.trainers import flags

    return flags.recipes()


def recipe_path(name: str) -> str:
    """The flagfile of the recipe `name`."""
    from synthblend.trainers import flags

    return flags.recipe_path(name)
