"""The Merkle tree over the ledger's entries, pure: RFC 9162 hashing, tree heads, inclusion and consistency proofs.

Why it exists. The hash chain (:mod:`gateway.ledger.chain`) proves that the ledger was not rewritten to
whoever holds all of it. A Merkle tree lets the gateway prove one entry's place (an inclusion proof) and
that a later ledger extends an earlier one (a consistency proof) to someone who holds only a signed tree
head, with O(log n) hashes: what a receipt needs to be checked offline (issue 18).

Hashing is RFC 9162 §2.1.1, with SHA-256:

- the hash of the empty tree is ``SHA-256()``, the hash of the empty string (:data:`EMPTY_ROOT`);
- a leaf is ``SHA-256(0x00 || data)`` (:func:`leaf_hash`);
- an interior node is ``SHA-256(0x01 || left || right)`` (:func:`node_hash`);
- the tree of ``n > 1`` leaves splits after ``k`` leaves, ``k`` the largest power of two below ``n``.

Storage. A tree is represented by the hashes of its *perfect* subtrees, each addressed ``(level, index)``:
the subtree of ``2**level`` leaves starting at leaf ``index * 2**level``. Level 0 holds the leaf hashes.
The first ``size`` leaves have exactly the perfect subtrees with ``(index + 1) * 2**level <= size``; none of
them ever changes once complete, so a store only ever inserts. Appending a leaf completes the nodes
:func:`nodes_completed_by` names; every other function reads the nodes it needs through a ``get(level,
index)`` callable (a dictionary, a list of levels, a repository's query) and reads only O(log n) of them.
They never ask for a node that is not complete within the size they are given.

Producers (:func:`root`, :func:`inclusion_proof`, :func:`consistency_proof`) raise ``ValueError`` for
arguments no tree answers (a negative size, an index not below the size, sizes out of order).

Verifiers fail closed, one convention for every input. :func:`check_inclusion` and
:func:`check_consistency` return ``None`` when the proof holds and raise :class:`InvalidProof`, with the
reason, for anything else: a mismatch, and equally a malformed input (a hash that is not 32 bytes, a proof
of the wrong length, a negative size, an index not below the size, sizes out of order, a size that is not
an ``int``). :func:`verify_inclusion` and :func:`verify_consistency` are the same checks answering a
``bool``: ``True`` only when the proof holds; they never raise. Verification needs nothing but this module
and ``hashlib``, so an offline verifier can use it as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, TypeAlias

#: Bytes of a SHA-256 hash: every leaf hash, node hash, root and proof element.
HASH_SIZE: Final = 32

#: MTH({}), the hash of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"

#: ``get(level, index)``: the hash of the perfect subtree of ``2**level`` leaves starting at leaf
#: ``index * 2**level``; asked only for subtrees that are complete.
NodeReader: TypeAlias = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """The hash of the leaf holding ``data``: ``SHA-256(0x00 || data)`` (RFC 9162 §2.1.1, MTH of one entry)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)`` (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# -- building ------------------------------------------------------------------------------------------------


def nodes_completed_by(size: int, leaf: bytes, get: NodeReader) -> list[tuple[int, int, bytes]]:
    """The perfect-subtree nodes that appending leaf number ``size`` (0-based) completes, bottom up.

    ``leaf`` is the new leaf's hash (:func:`leaf_hash`); the tree holds ``size`` leaves before it. The first
    item is always ``(0, size, leaf)``; each next one is the parent of the one before, while that one is a
    right child: ``(level, index, node_hash(get(level - 1, 2 * index), hash of the one before))``. They are
    exactly the nodes the store lacks for ``size + 1`` leaves. It reads one left sibling per parent, as many
    as ``size`` has trailing one bits (at most ``log2(size + 1)``).
    """
    _require_count(size, "size")
    _require_hash_argument(leaf, "leaf")
    completed = [(0, size, leaf)]
    level, index, current = 0, size, leaf
    while index & 1:
        current = node_hash(get(level, index - 1), current)
        level += 1
        index >>= 1
        completed.append((level, index, current))
    return completed


# -- reading: tree heads and proofs --------------------------------------------------------------------------


def root(size: int, get: NodeReader) -> bytes:
    """MTH(D[0:size]), the root hash of the first ``size`` leaves (RFC 9162 §2.1.1); :data:`EMPTY_ROOT` for 0.

    Composed from the perfect subtrees that ``size`` decomposes into (one per one bit of ``size``, largest
    first), folded from the right: it reads ``size.bit_count()`` nodes, at most ``size.bit_length()``.
    """
    _require_count(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _subtree_hash(0, size, get)


def inclusion_proof(index: int, size: int, get: NodeReader) -> list[bytes]:
    """PATH(index, D[0:size]), the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    RFC 9162 §2.1.3.1: the sibling subtree hashes from the leaf up to the root, nearest the leaf first;
    empty for the only leaf of a tree of one. It reads at most ``2 * size.bit_length()`` nodes.
    """
    _require_count(index, "index")
    _require_count(size, "size")
    if index >= size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:  # PATH(m, D_n) for n > 1: recurse into the half holding m, record the other
        split = start + _largest_power_of_two_below(end - start)
        if index < split:
            path.append(_subtree_hash(split, end, get))
            end = split
        else:
            path.append(_subtree_hash(start, split, get))
            start = split
    path.reverse()  # the recursion appends on the way back up: the leaf's sibling first
    return path


def consistency_proof(old_size: int, new_size: int, get: NodeReader) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]), proving the tree of ``old_size`` leaves is a prefix of ``new_size``.

    RFC 9162 §2.1.4.1, ``SUBPROOF(m, D_n, true)``, defined there for ``0 < m < n``. For ``m = n`` and for
    ``m = 0`` the proof is empty: a tree is consistent with itself, and the empty tree with every tree (the
    verifiers check the roots instead). It reads at most ``2 * new_size.bit_length()`` nodes.
    """
    _require_count(old_size, "old_size")
    _require_count(new_size, "new_size")
    if old_size > new_size:
        raise ValueError(f"old size {old_size} is larger than new size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end = 0, new_size
    whole = True  # SUBPROOF's b: the old tree is still the whole left part of the range (its root is known)
    while old_size != end:
        split = start + _largest_power_of_two_below(end - start)
        if old_size <= split:
            proof.append(_subtree_hash(split, end, get))
            end = split
        else:
            proof.append(_subtree_hash(start, split, get))
            start = split
            whole = False
    if not whole:  # SUBPROOF(m, D_m, false) = {MTH(D_m)}
        proof.append(_subtree_hash(start, end, get))
    proof.reverse()
    return proof


# -- verifying -----------------------------------------------------------------------------------------------


class InvalidProof(Exception):
    """A proof does not hold, or its inputs are malformed; ``reason`` says which, in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``proof`` puts the leaf hash ``leaf`` at ``index`` in the tree of ``size`` leaves with ``root``.

    RFC 9162 §2.1.3.2, after checking the inputs are well formed; raises :class:`InvalidProof` otherwise.
    """
    _require_hash(leaf, "the leaf hash")
    _require_hash(root, "the root hash")
    _require_proof(proof)
    _require_size(index, "the leaf index")
    _require_size(size, "the tree size")
    # 1. Compare leaf_index against tree_size.
    if index >= size:
        raise InvalidProof(f"leaf index {index} is not below tree size {size}")
    expected = _inclusion_proof_length(index, size)
    if len(proof) != expected:
        raise InvalidProof(
            f"an inclusion proof of leaf {index} in a tree of size {size} has {expected} hashes, not {len(proof)}"
        )
    # 2. fn is the leaf's index, sn the last leaf's; both climb one level per proof element.
    fn, sn = index, size - 1
    # 3. r starts as the leaf hash.
    r = leaf
    # 4. Combine with each element, on the left when r is a right child or the last node of its level.
    for p in proof:
        if sn == 0:  # 4a
            raise InvalidProof("the inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:  # the last node of its level, a left child: climb to where it has a sibling
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    # 5. The path ended at the root, and the root is the one given.
    if sn != 0:
        raise InvalidProof("the inclusion proof is shorter than the path to the root")
    if r != root:
        raise InvalidProof(f"the inclusion proof of leaf {index} does not lead to the root of tree size {size}")


def check_consistency(old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> None:
    """Check that ``proof`` shows the tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``, after checking the inputs are well formed. Where the
    RFC defines no proof, the proof must be empty and the roots decide: for equal sizes the roots must be
    equal; for ``old_size`` 0, ``old_root`` must be :data:`EMPTY_ROOT` (a tree of 0 leaves has no other
    root). Raises :class:`InvalidProof` otherwise.
    """
    _require_hash(old_root, "the old root hash")
    _require_hash(new_root, "the new root hash")
    _require_proof(proof)
    _require_size(old_size, "the old tree size")
    _require_size(new_size, "the new tree size")
    if old_size > new_size:
        raise InvalidProof(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0 or old_size == new_size:
        if proof:
            raise InvalidProof(f"a consistency proof from size {old_size} to {new_size} is empty")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise InvalidProof("the old root is not the root of the empty tree")
        if old_size == new_size and old_root != new_root:
            raise InvalidProof(f"two different roots for the same tree size {old_size}")
        return
    expected = _consistency_proof_length(old_size, new_size)
    if len(proof) != expected:
        raise InvalidProof(
            f"a consistency proof from size {old_size} to {new_size} has {expected} hashes, not {len(proof)}"
        )
    # 1. An empty path fails (the length check above is stricter: here 0 < old_size < new_size).
    path = list(proof)
    # 2. The old tree is a perfect subtree of the new one: its root is the first node of the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3. fn is the old tree's last leaf, sn the new tree's.
    fn, sn = old_size - 1, new_size - 1
    # 4. Climb while fn is a right child: the first node of the path covers the old tree's last leaf there.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Both roots start from the first node.
    fr = sr = path[0]
    # 6. Nodes to the left of fn go into both roots, nodes to its right only into the new root.
    for c in path[1:]:
        if sn == 0:  # 6a
            raise InvalidProof("the consistency proof is longer than the path to the new root")
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    # 7. Both paths ended at their roots, and the roots are the ones given.
    if sn != 0:
        raise InvalidProof("the consistency proof is shorter than the path to the new root")
    if fr != old_root:
        raise InvalidProof(f"the consistency proof does not lead to the old root (size {old_size})")
    if sr != new_root:
        raise InvalidProof(f"the consistency proof does not lead to the new root (size {new_size})")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """``True`` exactly when :func:`check_inclusion` accepts (RFC 9162 §2.1.3.2); ``False`` for anything else."""
    try:
        check_inclusion(leaf, index, size, proof, root)
    except InvalidProof:
        return False
    return True


def verify_consistency(old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> bool:
    """``True`` exactly when :func:`check_consistency` accepts (RFC 9162 §2.1.4.2); ``False`` for anything else."""
    try:
        check_consistency(old_size, new_size, proof, old_root, new_root)
    except InvalidProof:
        return False
    return True


# -- in memory -----------------------------------------------------------------------------------------------


class MerkleTree:
    """A whole tree in memory, built and read with the functions above: for tests and tools.

    It keeps one list of node hashes per level (``levels[level][index]``), which is the store the database
    will keep as rows.
    """

    __slots__ = ("_levels",)

    def __init__(self, entries: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for data in entries:
            self.append(data)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def get(self, level: int, index: int) -> bytes:
        """The stored hash of perfect subtree ``(level, index)``; ``KeyError`` if it is not complete."""
        if level < 0 or index < 0 or level >= len(self._levels) or index >= len(self._levels[level]):
            raise KeyError((level, index))
        return self._levels[level][index]

    def append(self, data: bytes) -> int:
        """Append the leaf holding ``data``; returns its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append a leaf by its hash (:func:`leaf_hash` of its data); returns its index."""
        index = self.size
        for level, position, value in nodes_completed_by(index, leaf, self.get):
            if level == len(self._levels):
                self._levels.append([])
            if position != len(self._levels[level]):  # nodes_completed_by names exactly the next node of each level
                raise RuntimeError(f"node ({level}, {position}) is out of order")
            self._levels[level].append(value)
        return index

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all of them by default)."""
        return root(self._size(size), self.get)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) (the whole tree by default)."""
        return inclusion_proof(index, self._size(size), self.get)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) (to the whole tree by default)."""
        return consistency_proof(old_size, self._size(new_size), self.get)

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if size > self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")
        return size


class Frontier:
    """The right edge of a growing tree, in O(log n) memory: the roots of the perfect subtrees the leaves so far
    decompose into, largest first. Enough to know MTH at every size as leaves stream by (a verifier walking the
    ledger), never enough for a proof. ``Frontier.of(size, get)`` resumes from stored nodes."""

    __slots__ = ("_edge", "size")

    def __init__(self) -> None:
        self._edge: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing
        self.size = 0

    @classmethod
    def of(cls, size: int, get: NodeReader) -> Frontier:
        """The frontier of the first ``size`` leaves, read from stored perfect-subtree nodes."""
        _require_count(size, "size")
        frontier = cls()
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size & (1 << level):
                value = get(level, start >> level)
                _require_hash(value, f"node ({level}, {start >> level})")
                frontier._edge.append((level, value))
                start += 1 << level
        frontier.size = size
        return frontier

    def push(self, leaf: bytes) -> None:
        """Append a leaf by its hash."""
        _require_hash_argument(leaf, "leaf")
        level, value = 0, leaf
        while self._edge and self._edge[-1][0] == level:
            _, left = self._edge.pop()
            level, value = level + 1, node_hash(left, value)
        self._edge.append((level, value))
        self.size += 1

    def root(self) -> bytes:
        """MTH of the leaves pushed so far (RFC 9162 §2.1.1): the edge folded from the right."""
        if not self._edge:
            return EMPTY_ROOT
        value = self._edge[-1][1]
        for _, left in reversed(self._edge[:-1]):
            value = node_hash(left, value)
        return value


# -- internals -----------------------------------------------------------------------------------------------


def _largest_power_of_two_below(n: int) -> int:
    """RFC 9162's k for n > 1: the largest power of two smaller than n."""
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_subtrees(start: int, count: int) -> Iterator[tuple[int, int]]:
    """The ``(level, index)`` of the perfect subtrees covering leaves ``[start, start + count)``, left to right.

    One per one bit of ``count``, largest first. ``start`` is a multiple of a power of two at least
    ``count``, as every subtree of the RFC's recursion is, so each of them is aligned.
    """
    for level in range(count.bit_length() - 1, -1, -1):
        if count >> level & 1:
            yield level, start >> level
            start += 1 << level


def _subtree_hash(start: int, end: int, get: NodeReader) -> bytes:
    """MTH(D[start:end]) for a non-empty range of the RFC's recursion, read from its perfect subtrees.

    The RFC splits a range at its largest power of two, so its hash is the perfect subtrees of the range
    combined from the right: ``node_hash(p1, node_hash(p2, ... pk))``.
    """
    parts = [get(level, index) for level, index in _perfect_subtrees(start, end - start)]
    value = parts.pop()
    while parts:
        value = node_hash(parts.pop(), value)
    return value


def _inclusion_proof_length(index: int, size: int) -> int:
    """The length of PATH(index, D[0:size]) for ``index < size``.

    Below the level where the paths to leaf ``index`` and to the last leaf meet, every level contributes a
    sibling (``inner``); above it, the path runs along the tree's right border, where only the levels at
    which ``index``'s ancestor is a right child contribute one (``border``).
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    """The length of PROOF(old_size, D[0:new_size]) for ``0 < old_size < new_size``.

    The path from the old tree's last leaf to the new root, less the levels inside the old tree's last
    perfect subtree (its ``trailing zeros``), plus that subtree's own hash unless it is the whole old tree.
    """
    trailing_zeros = (old_size & -old_size).bit_length() - 1
    own_hash = 0 if old_size == 1 << trailing_zeros else 1
    return _inclusion_proof_length(old_size - 1, new_size) - trailing_zeros + own_hash


def _require_count(value: int, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} is negative ({value})")


def _require_hash_argument(value: bytes, name: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{name} is not a {HASH_SIZE}-byte hash")


def _require_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidProof(f"{what} is not a {HASH_SIZE}-byte hash")


def _require_proof(proof: Sequence[bytes]) -> None:
    if isinstance(proof, bytes | str) or not isinstance(proof, Sequence):
        raise InvalidProof("the proof is not a sequence of hashes")
    for position, value in enumerate(proof):
        _require_hash(value, f"proof element {position}")


def _require_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidProof(f"{what} is not an integer")
    if value < 0:
        raise InvalidProof(f"{what} is negative")
