"""The one generic registry: register (item or decorator), get, names, items, duplicates."""

import pytest

from vfmbench.registry import DuplicateNameError, Registry
from vfmbench.utils.errors import UnknownNameError


class Item:
    def __init__(self, name):
        self.name = name


def test_register_get_names_items_in_registration_order():
    reg = Registry[Item]("widget")
    b, a = reg.register(Item("b")), reg.register(Item("a"))
    assert reg.get("a") is a and reg.get("b") is b
    assert reg.names() == ["b", "a"]
    assert reg.items() == [("b", b), ("a", a)]
    assert list(reg) == [b, a] and len(reg) == 2 and "a" in reg and "c" not in reg


def test_decorator_registers_under_the_given_name():
    reg = Registry("segmenter")

    @reg.register(name="oracle")
    def oracle():
        return 1

    assert reg.get("oracle") is oracle and reg.names() == ["oracle"]


def test_duplicate_name_is_a_clear_error():
    reg = Registry[Item]("widget")
    reg.register(Item("x"))
    with pytest.raises(DuplicateNameError, match="widget 'x' is registered twice"):
        reg.register(Item("x"))
    with pytest.raises(DuplicateNameError):
        reg.register(Item("y"), name="x")


def test_unknown_name_lists_the_valid_ones():
    reg = Registry[Item]("widget")
    reg.register(Item("x"))
    reg.register(Item("y"))
    with pytest.raises(UnknownNameError, match="unknown widget 'z'; valid widgets: x, y"):
        reg.get("z")
    with pytest.raises(UnknownNameError):
        reg.get(None)  # type: ignore[arg-type]


def test_nameless_items_are_refused():
    with pytest.raises(TypeError, match="give it a name"):
        Registry("widget").register(object())


@pytest.mark.parametrize("module, attr, first", [
    ("vfmbench.tasks", "TASKS", "fetch_reach"),
    ("vfmbench.tasks.shifts", "SHIFTS", "none"),
    ("vfmbench.encoders", "ENCODERS", "state"),
    ("vfmbench.policies", "METHODS", "bc"),
    ("vfmbench.policies.presets", "PRESETS", None),
])
def test_every_named_kind_is_a_registry_that_rejects_duplicates(module, attr, first):
    import importlib

    reg = getattr(importlib.import_module(module), attr)
    assert isinstance(reg, Registry) and len(reg) > 0
    if first is not None:
        assert reg.names()[0] == first
    name, item = reg.items()[0]
    with pytest.raises(DuplicateNameError):
        reg.register(item, name=name)
