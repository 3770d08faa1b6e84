"""The ledger's Merkle tree in the database: extended by the checkpointer, read for proofs (issue 18).

Leaf ``i`` of the tree is the ledger entry ``seq = i``; its leaf data is the entry's chain hash (the 32 bytes
of ``ledger_entries.hash``), so that an inclusion proof for an entry proves the entry's fields (from which the
hash is recomputed, :mod:`gateway.ledger.chain`) are in the tree whose root a checkpoint signed. The hashing,
the node addressing and the proofs are :mod:`gateway.ledger.merkle` (pure, RFC 9162); here they meet the table
``ledger_merkle_nodes`` (:class:`gateway.ledger.repository.MerkleRepository`).

The tree is not extended on the intake path: the checkpointer extends it over the entries it has just
verified, before it signs, and stores the root on the checkpoint (``root_hash``). Proofs are therefore
available for every size up to the latest checkpoint: "a receipt can be completed once the next checkpoint
exists". Appending costs intake nothing; each checkpoint writes about two nodes per new entry.

Reading a proof: the pure functions read nodes through a synchronous ``get(level, index)``; which nodes they
read depends only on the sizes and indices, never on the hashes, so a first dry run with a recording reader
names every node the proof needs, one query fetches them, and the second run computes the proof.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ledger import merkle
from gateway.ledger.chain import ChainRow
from gateway.ledger.repository import LedgerRepository, MerkleRepository

T = TypeVar("T")
_BATCH = 5_000
_PLACEHOLDER = bytes(32)


class TreeIncomplete(Exception):
    """A proof or root was asked for a size the stored tree does not cover (yet)."""


async def _computed(session: AsyncSession, compute: Callable[[merkle.NodeReader], T]) -> T:
    """``compute(get)`` with the nodes it reads fetched in one query (module docstring)."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return _PLACEHOLDER

    compute(record)
    found = await MerkleRepository(session).nodes(wanted)
    missing = wanted - found.keys()
    if missing:
        raise TreeIncomplete(f"{len(missing)} node(s) of the tree are not stored, e.g. {min(missing)}")
    return compute(lambda level, index: found[(level, index)])


async def stored_size(session: AsyncSession) -> int:
    return await MerkleRepository(session).size()


async def extend(session: AsyncSession, up_to: int) -> int:
    """Add the leaves ``stored size … up_to - 1`` (entries the caller has verified) and every node they complete,
    in the caller's transaction; the tree's size afterwards."""
    repo = MerkleRepository(session)
    size = await repo.size()
    if size >= up_to:
        return size
    # The left siblings the new leaves need: the right edge of the stored tree (one node per one bit of size).
    frontier = {(level, index) for level, index in _edge(size)}
    known = await repo.nodes(frontier) if frontier else {}
    if len(known) != len(frontier):
        raise TreeIncomplete(f"the stored tree's right edge at size {size} is incomplete")
    ledger = LedgerRepository(session)
    after = size - 1 if size > 0 else None

    def get(level: int, index: int) -> bytes:
        return known[(level, index)]

    while size < up_to:
        rows = await ledger.chain_rows(after, min(_BATCH, up_to - size))
        if not rows:
            raise TreeIncomplete(f"entry {size} is missing from the ledger")
        # The hashing in a worker thread (the checkpointer runs in a serving process: its event loop keeps
        # answering requests meanwhile, issue 17).
        added, size = await asyncio.to_thread(_hash_rows, rows, size, known, get)
        await repo.add(added)
        after = rows[-1][0]
        # keep only the right edge in memory: nothing to the left of it is read again
        edge = set(_edge(size))
        for key in [key for key in known if key not in edge]:
            del known[key]
    return size


def _hash_rows(rows: Sequence[ChainRow], size: int, known: dict[tuple[int, int], bytes],
               get: Callable[[int, int], bytes]) -> tuple[list[tuple[int, int, bytes]], int]:
    """The nodes the leaves of ``rows`` (entries ``size`` on, in order) complete, added to ``known``; the size after."""
    added: list[tuple[int, int, bytes]] = []
    for row in rows:
        if row[0] != size:
            raise TreeIncomplete(f"entry {size} is missing from the ledger (found {row[0]})")
        nodes = merkle.nodes_completed_by(size, merkle.leaf_hash(bytes.fromhex(row[10])), get)
        for level, index, value in nodes:
            known[(level, index)] = value
        added.extend(nodes)
        size += 1
    return added, size


def _edge(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees the first ``size`` leaves decompose into, largest first (their roots)."""
    nodes = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


async def frontier(session: AsyncSession, size: int) -> merkle.Frontier | None:
    """The right edge of the first ``size`` leaves from the stored nodes; None when they are not all stored."""
    if size == 0:
        return merkle.Frontier()
    found = await MerkleRepository(session).nodes(_edge(size))
    if len(found) != len(_edge(size)):
        return None
    return merkle.Frontier.of(size, lambda level, index: found[(level, index)])


async def root(session: AsyncSession, size: int) -> bytes:
    return await _computed(session, lambda get: merkle.root(size, get))


async def inclusion_proof(session: AsyncSession, index: int, size: int) -> list[bytes]:
    return await _computed(session, lambda get: merkle.inclusion_proof(index, size, get))


async def consistency_proof(session: AsyncSession, old_size: int, new_size: int) -> list[bytes]:
    return await _computed(session, lambda get: merkle.consistency_proof(old_size, new_size, get))
