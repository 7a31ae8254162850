"""Registries by name, and the errors a user can cause.

A `Registry` maps names to things (model classes, data sources, loss families). Registering a
name twice is a programming error; looking up a name that does not exist is a user error whose
message lists what does exist.

`UserError` and its subclasses are the errors a user can cause with a flag, a path, a file or a
shape. The command-line tools turn them into one line on stderr and a non-zero exit status:
`UsageError` (a bad flag value) exits 2, `DataError` (a bad file or data) and `TrainingError`
(a run that cannot go on) exit 1.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """An error the user caused and can fix; its message is one line."""

    exit_code = 1


class UsageError(UserError):
    """A flag or argument value that is not accepted."""

    exit_code = 2


class DataError(UserError):
    """A file or dataset whose contents cannot be used."""


class TrainingError(UserError):
    """A run that cannot continue (for example a non-finite loss)."""


class Registry(Generic[T]):
    """Things registered by unique name.

    Example:

    ```python
    MODELS = Registry("model")

    @MODELS.register("gan")
    class GAN(keras.Model): ...

    MODELS.get("gan")  # -> GAN
    MODELS.get("gna")  # UsageError: unknown model 'gna'; known: dcgan, gan
    ```
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its target under `name`; a taken name raises ValueError."""

        def decorator(entry: T) -> T:
            self.add(name, entry)
            return entry

        return decorator

    def add(self, name: str, entry: T) -> None:
        if not name or name != name.strip():
            raise ValueError(f"{self.kind} name {name!r} must be non-empty without spaces")
        if name in self._entries:
            raise ValueError(
                f"{self.kind} {name!r} is already registered (by {self._entries[name]!r})"
            )
        self._entries[name] = entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


MODELS: Registry = Registry("model")
