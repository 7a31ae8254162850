"""The model zoo: every model registers itself by name in `MODELS` when its module is imported."""

from synthblend.zoo import dcgan, gan, infogan, vae  # noqa: F401  (registration)
from synthblend.zoo.registry import MODELS, DataError, TrainingError, UsageError, UserError

__all__ = ["MODELS", "DataError", "TrainingError", "UsageError", "UserError", "names", "get"]


def names() -> list[str]:
    """Registered model names, sorted."""
    return MODELS.names()


def get(name: str):
    """The model class registered as `name`; UsageError listing the known names otherwise."""
    return MODELS.get(name)
