"""
Small helpers shared by the evaluation modules: a progress bar, mapping-style access.

:class:`Progress` is an optional tqdm bar (``progress=False`` draws nothing);
:class:`ItemAccess` lets the typed results (dataclasses) be read as ``run['key']`` too,
the way the callers read the plain dicts these results used to be.
"""
from typing import Any

__all__ = ['ItemAccess', 'Progress']


class Progress:
    """A tqdm bar of ``total`` images when ``progress`` is true, else nothing."""

    def __init__(self, progress, total: int, desc: str):
        self.bar = None
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit='img', dynamic_ncols=True,
                            leave=False)

    def update(self, n: int = 1) -> None:
        """Advance the bar by ``n``."""
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


class ItemAccess:
    """
    Mixin for dataclasses: ``obj['field']`` and ``obj.get('field', default)``.

    Only the dataclass fields are keys; any other key raises ``KeyError``.
    """

    def _keys(self) -> tuple:
        return tuple(getattr(self, '__dataclass_fields__', ()))

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key) -> bool:
        return key in self._keys()

    def get(self, key: str, default: Any = None) -> Any:
        """Return the field ``key``, or ``default`` when there is no such field."""
        return getattr(self, key) if key in self._keys() else default

    def keys(self) -> tuple:
        """Names of the fields, in declaration order."""
        return self._keys()
