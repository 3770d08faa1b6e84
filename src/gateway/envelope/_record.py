"""Collecting :class:`~gateway.envelope.deviations.Deviation` records while an envelope is read.

Each record remembers the element it was seen at, so that records made by different readers (structure,
metadata, attachments) are returned together in document order, without exact duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from .deviations import DEVIATIONS, Deviation

__all__ = ["DeviationLog"]


class DeviationLog:
    """An append-only list of (element, deviation) pairs."""

    def __init__(self) -> None:
        self._items: list[tuple[etree._Element | None, Deviation]] = []

    def add(self, code: str, where: str, at: etree._Element | None = None) -> None:
        """Record ``code`` at ``where``; ``at`` is the element concerned (None: the document as a whole)."""
        if code not in DEVIATIONS:
            raise ValueError(f"deviation code {code!r} is not in the catalogue")
        self._items.append((at, Deviation(code, where)))

    def extend(self, other: DeviationLog) -> None:
        self._items.extend(other._items)

    def ordered(self, root: etree._Element) -> tuple[Deviation, ...]:
        return ordered(root, [self])


def ordered(root: etree._Element, logs: Iterable[DeviationLog]) -> tuple[Deviation, ...]:
    """The deviations of ``logs`` in the document order of ``root`` (records without an element first, records
    on the same element in the order they were made), each exact duplicate once."""
    items = [item for log in logs for item in log._items]
    if not items:
        return ()
    position = {el: i for i, el in enumerate(root.iter())}
    indexed = sorted(
        enumerate(items), key=lambda pair: (-1 if pair[1][0] is None else position.get(pair[1][0], -1), pair[0])
    )
    out: list[Deviation] = []
    seen: set[Deviation] = set()
    for _n, (_el, deviation) in indexed:
        if deviation not in seen:
            seen.add(deviation)
            out.append(deviation)
    return tuple(out)
