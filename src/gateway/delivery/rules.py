"""Who a message goes to (pure: no SQL, no session; the register's rows are handed in).

Routing (EDXML.md codes): a status from a recipient goes to the document's sender; a recall (13) from the
sender goes to every recipient of the document, who answer 15 (accept) or 16 (refuse), which go back to
the sender like any status. The reporting agency itself never receives its own status, and a suspended
agency receives nothing new (its status is still stored and shown in the document view). Each target gets
a delivery row like a document's, push or pull as the register says, with the original's priority (a
status about an urgent document is urgent too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.acceptance import Target
from gateway.agency.models import Agency

ARRIVED = "01"
RECALL = "13"


def status_targets(code: str, reporter: str, original_sender: str, recipients: Sequence[str]) -> list[str]:
    """Who receives a status ``code`` reported by ``reporter`` about a document."""
    targets = [r for r in recipients if r != reporter] if code == RECALL else [original_sender]
    return [t for t in dict.fromkeys(targets) if t != reporter]


def delivery_targets(agencies: Iterable[Agency]) -> list[Target]:
    """The deliveries a message needs: one per active agency, push or pull as its register entry says."""
    return [Target(a.code, a.delivery_mode) for a in agencies if a.active]
