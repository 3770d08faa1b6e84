"""The mã định danh (OrganId) of an agency, pure.

``LLL.KK.JJ.Xnn`` from the lowest level to the highest; the parent of a unit is found by zeroing its
lowest non-zero part (``001.00.10.H47`` → ``000.00.10.H47`` → ``000.00.00.H47``).
"""

from __future__ import annotations

import re

from gateway.envelope.document import ORGAN_ID_PATTERN

#: The OrganId of edXML (QĐ 20): one definition, in the envelope, which checks every From and To with it.
CODE_PATTERN = ORGAN_ID_PATTERN.pattern

#: An alias: another code an agency is known by in the wild (an old-format code such as ``28.22.H17``, the
#: QĐ 20/2020 identifier, a SaaS tenant id such as ``vxp.saas.03``); compared exactly, case included.
ALIAS_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def is_valid_code(code: str) -> bool:
    return ORGAN_ID_PATTERN.fullmatch(code) is not None


def implied_parent(code: str) -> str | None:
    """The code of the unit one level up, or None for a top-level unit (``000.00.00.Xnn``)."""
    parts = code.split(".")
    for i in range(3):
        if int(parts[i]) != 0:
            parts[i] = "0" * len(parts[i])
            return ".".join(parts)
    return None
