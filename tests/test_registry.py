import pytest

from synthblend import zoo
from synthblend.zoo.registry import Registry, UsageError


def test_register_and_get():
    registry = Registry("thing")

    @registry.register("b")
    class B:
        pass

    registry.add("a", 1)
    assert registry.get("b") is B
    assert registry.names() == ["a", "b"]
    assert "a" in registry and "c" not in registry
    assert list(registry) == ["a", "b"] and len(registry) == 2


def test_duplicate_name_is_rejected():
    registry = Registry("thing")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="'a' is already registered"):
        registry.add("a", 2)
    assert registry.get("a") == 1


@pytest.mark.parametrize("name", ["", " a", "a "])
def test_blank_or_padded_names_are_rejected(name):
    with pytest.raises(ValueError, match="non-empty"):
        Registry("thing").add(name, 1)


def test_unknown_name_lists_known_ones():
    registry = Registry("thing")
    registry.add("beta", 1)
    registry.add("alpha", 2)
    with pytest.raises(UsageError, match=r"unknown thing 'gamma'; known: alpha, beta$"):
        registry.get("gamma")


def test_zoo_exposes_the_models():
    assert {"gan", "dcgan"} <= set(zoo.names())
    assert zoo.names() == sorted(zoo.names())
    assert zoo.get("gan").__name__ == "GAN"
    with pytest.raises(UsageError, match="unknown model 'gna'; known: .*dcgan.*gan"):
        zoo.get("gna")


def test_model_flag_is_an_enum_of_the_registry():
    from synthblend.trainers import flags

    from synthblend.trainers import cli

    assert cli.flag_values_of([flags.MODEL])["model"].parser.enum_values == zoo.names()
