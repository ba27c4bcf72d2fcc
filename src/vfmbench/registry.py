"""One generic registry for every kind of named thing: tasks, shifts, encoders, weights, methods,
presets (and later segmenters, RL agents, analyses).

    TASKS = Registry[TaskSpec]("task")
    TASKS.register(TaskSpec("fetch_push", ...))       # an item with a ``name`` attribute
    @SEGMENTERS.register(name="oracle")               # or as a decorator
    def oracle(...): ...
    TASKS.get("fetch_pusj")   # UnknownNameError: unknown task 'fetch_pusj'; valid tasks: ...

Names keep their registration order (``names()``, ``items()``, iteration), which is the order
the ``list`` commands print. Registering a name twice is an error (`DuplicateNameError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from vfmbench.utils.errors import VfmbenchError, unknown_name

T = TypeVar("T")


class DuplicateNameError(VfmbenchError, ValueError):
    """A name was registered twice in one registry."""


class Registry(Generic[T]):
    """Named items of one kind (`kind` is used in error messages: "task", "encoder", ...)."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._items: dict[str, T] = {}

    @overload
    def register(self, item: T, *, name: str | None = None) -> T: ...
    @overload
    def register(self, item: None = None, *, name: str) -> Callable[[T], T]: ...

    def register(self, item: T | None = None, *, name: str | None = None) -> Any:
        """Add `item` under `name` (default: ``item.name``) and return it.

        Without `item`, returns a decorator that registers what it decorates under `name`.
        Raises `DuplicateNameError` if the name is taken.
        """
        if item is None:
            if name is None:
                raise TypeError("register() needs an item or a name")
            return lambda obj: self.register(obj, name=name)
        key = name if name is not None else getattr(item, "name", None)
        if not isinstance(key, str) or not key:
            raise TypeError(f"cannot register {item!r} as a {self.kind}: give it a name")
        if key in self._items:
            raise DuplicateNameError(f"{self.kind} {key!r} is registered twice; {self.kind} names must be unique")
        self._items[key] = item
        return item

    def get(self, name: str) -> T:
        """The item called `name`; `UnknownNameError` (listing the valid names) if there is none."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise unknown_name(self.kind, name, list(self._items), plural=self.plural) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        """``(name, item)`` pairs in registration order."""
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} {self.plural})"
