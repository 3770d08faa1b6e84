"""The ledger's Merkle tree (``gateway.ledger.merkle``): RFC 9162 hashing, tree heads, inclusion and consistency proofs.

Three independent witnesses of the answers, then the properties a store relies on:

1. the published reference vectors of RFC 6962 trees (below, with where they come from);
2. a literal transcription of RFC 9162 §2.1 written here (recursive MTH, PATH and SUBPROOF over a list of
   leaf hashes, hashing with ``hashlib`` directly), compared on every proof of every tree up to 300 leaves;
3. ``pymerkle`` 7, a separate implementation, checked first to hash as RFC 9162 does, compared on roots and
   inclusion paths, and each side's consistency proofs verified against the other side's roots, up to
   300 leaves and on random sizes of a tree of 100,000 leaves.

Then: tampering with any proof element, the leaf, the index, a size or a root makes verification fail;
malformed input is refused (never an exception out of ``verify_*``); appending leaf by leaf stores exactly
the perfect subtrees; and every operation reads O(log n) nodes, all of them complete within the size asked.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from pymerkle import InmemoryTree
from pymerkle.hasher import MerkleHasher

from gateway.ledger import merkle
from gateway.ledger.merkle import (
    EMPTY_ROOT,
    InvalidProof,
    MerkleTree,
    check_consistency,
    check_inclusion,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    nodes_completed_by,
    root,
    verify_consistency,
    verify_inclusion,
)


def h(hexdigits: str) -> bytes:
    return bytes.fromhex(hexdigits)


# -- the reference vectors -----------------------------------------------------------------------------------
# The RFC 6962 test tree of the certificate-transparency implementations, as published in
# github.com/transparency-dev/merkle (Apache-2.0):
# - leaves, perfect-subtree hashes and roots: testonly/constants.go (LeafInputs, NodeHashes, RootHashes),
#   commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1;
# - inclusion and consistency proofs: proof/verify_test.go (inclusionProofs, consistencyProofs; leaf numbers
#   there count from 1, indices here from 0), commit 02194e9afb6c1d95b5381350007963aa70fff472, and
#   testonly/reference_test.go (TestRefInclusionProof, TestRefConsistencyProof),
#   commit 141d627eab770a7e9a2514f46a8b6338e6d90874.

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

#: (level, index) -> hash of that perfect subtree of the 8-leaf tree
NODE_HASHES = {
    (0, 0): h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    (0, 1): h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
    (0, 2): h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
    (0, 3): h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
    (0, 4): h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    (0, 5): h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
    (0, 6): h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
    (0, 7): h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    (1, 0): h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    (1, 1): h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
    (1, 2): h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
    (1, 3): h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    (2, 0): h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    (2, 1): h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    (3, 0): h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
}

#: tree size -> root hash
ROOTS = {
    0: h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    1: h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    2: h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    3: h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    4: h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    5: h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    6: h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    7: h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    8: h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
}

#: (leaf index, tree size, PATH)
INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 2, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")]),
    (1, 2, [h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")]),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

#: (old size, new size, PROOF)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

# Not a root of any tree in these tests (the value the Go tests use as "some hash").
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


def _flip(value: bytes, bit: int = 3) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


def _entries(count: int) -> list[bytes]:
    """Leaf data for the larger trees: distinct, of varying length (the empty entry first)."""
    return [i.to_bytes((i.bit_length() + 7) // 8, "big") for i in range(count)]


# -- a literal RFC 9162 §2.1, the second witness --------------------------------------------------------------


class Rfc9162:
    """MTH, PATH and PROOF exactly as RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 define them, over leaf data.

    Recursive, with hashlib directly (not the module under test); subtree hashes are memoised by range so
    that every proof of a 300-leaf tree stays cheap.
    """

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.leaves = [hashlib.sha256(b"\x00" + d).digest() for d in entries]
        self._memo: dict[tuple[int, int], bytes] = {}

    @staticmethod
    def k(n: int) -> int:
        """The largest power of two smaller than n (n > 1)."""
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    def mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return self.leaves[start]
        key = (start, end)
        if key not in self._memo:
            k = self.k(n)
            self._memo[key] = hashlib.sha256(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end)).digest()
        return self._memo[key]

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = self.k(n)
        if m < k:
            return [*self.path(m, start, start + k), self.mth(start + k, end)]
        return [*self.path(m - k, start + k, end), self.mth(start, start + k)]

    def subproof(self, m: int, start: int, end: int, b: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if b else [self.mth(start, end)]
        k = self.k(n)
        if m <= k:
            return [*self.subproof(m, start, start + k, b), self.mth(start + k, end)]
        return [*self.subproof(m - k, start + k, end, False), self.mth(start, start + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True)


class CountingReader:
    """A ``get`` over a tree's store that counts reads and fails on a node not complete within ``size``."""

    def __init__(self, tree: MerkleTree, size: int) -> None:
        self.tree = tree
        self.size = size
        self.reads = 0

    def __call__(self, level: int, index: int) -> bytes:
        assert level >= 0
        assert index >= 0
        assert (index + 1) << level <= self.size, f"read ({level}, {index}) beyond size {self.size}"
        self.reads += 1
        return self.tree.get(level, index)


def _log_bound(n: int) -> int:
    """O(log n), as the module documents it: at most two nodes per level of the tree."""
    return 2 * n.bit_length()


# -- fixtures ------------------------------------------------------------------------------------------------

SMALL = 300
LARGE = 100_000


@pytest.fixture(scope="module")
def reference_tree() -> MerkleTree:
    return MerkleTree(LEAF_INPUTS)


@pytest.fixture(scope="module")
def small() -> tuple[MerkleTree, Rfc9162]:
    entries = _entries(SMALL)
    return MerkleTree(entries), Rfc9162(entries)


@pytest.fixture(scope="module")
def large() -> tuple[MerkleTree, Any]:
    entries = _entries(LARGE)
    return MerkleTree(entries), InmemoryTree.init_from_entries(entries)


# -- 1. known answers ----------------------------------------------------------------------------------------


def test_empty_tree_root_is_the_hash_of_the_empty_string() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT == ROOTS[0]
    assert MerkleTree().root() == EMPTY_ROOT
    assert root(0, MerkleTree().get) == EMPTY_ROOT


def test_leaf_and_node_hashes_carry_the_rfc9162_prefixes() -> None:
    assert leaf_hash(b"entry") == hashlib.sha256(b"\x00entry").digest()
    left, right = hashlib.sha256(b"l").digest(), hashlib.sha256(b"r").digest()
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)
    # A leaf and a node over the same bytes never collide: the prefixes separate them.
    assert leaf_hash(left + right) != node_hash(left, right)


def test_leaf_hashes_match_the_reference_vectors() -> None:
    assert [leaf_hash(d) for d in LEAF_INPUTS] == [NODE_HASHES[(0, i)] for i in range(8)]


def test_roots_match_the_reference_vectors(reference_tree: MerkleTree) -> None:
    assert {n: reference_tree.root(n) for n in range(9)} == ROOTS


def test_stored_perfect_subtrees_match_the_reference_vectors(reference_tree: MerkleTree) -> None:
    stored = {(level, index): reference_tree.get(level, index) for level, index in NODE_HASHES}
    assert stored == NODE_HASHES
    with pytest.raises(KeyError):
        reference_tree.get(4, 0)  # 16 leaves: not there


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_the_reference_vectors(
    reference_tree: MerkleTree, index: int, size: int, expected: list[bytes]
) -> None:
    assert reference_tree.inclusion_proof(index, size) == expected
    assert verify_inclusion(leaf_hash(LEAF_INPUTS[index]), index, size, expected, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_the_reference_vectors(
    reference_tree: MerkleTree, old: int, new: int, expected: list[bytes]
) -> None:
    assert reference_tree.consistency_proof(old, new) == expected
    assert verify_consistency(old, new, expected, ROOTS[old], ROOTS[new])


def _corrupted_inclusion(index: int, size: int, proof: list[bytes], leaf: bytes, top: bytes) -> Iterator[tuple]:
    """The probes of transparency-dev/merkle's corruptInclusionProof, and a few more: none may verify."""
    yield "index - 1", leaf, index - 1, size, proof, top
    yield "index + 1", leaf, index + 1, size, proof, top
    yield "index ^ 2", leaf, index ^ 2, size, proof, top
    yield "size * 2", leaf, index, size * 2, proof, top
    yield "size / 2", leaf, index, size // 2, proof, top
    yield "wrong leaf", leaf_hash(b"WrongLeaf"), index, size, proof, top
    yield "flipped leaf", _flip(leaf), index, size, proof, top
    yield "leaf data instead of its hash", hashlib.sha256(b"\x01" + leaf).digest(), index, size, proof, top
    yield "empty root", leaf, index, size, proof, EMPTY_ROOT
    yield "random root", leaf, index, size, proof, SOME_HASH
    yield "trailing garbage", leaf, index, size, [*proof, b""], top
    yield "trailing root", leaf, index, size, [*proof, top], top
    yield "preceding garbage", leaf, index, size, [b"", *proof], top
    yield "preceding root", leaf, index, size, [top, *proof], top
    for i in range(len(proof)):
        yield f"flipped proof[{i}]", leaf, index, size, [*proof[:i], _flip(proof[i]), *proof[i + 1 :]], top
    if proof:
        yield "removed component", leaf, index, size, proof[:-1], top
    if len(proof) > 1:
        yield "inserted component", leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], top
        yield "reversed", leaf, index, size, proof[::-1], top


def _corrupted_consistency(old: int, new: int, proof: list[bytes], r1: bytes, r2: bytes) -> Iterator[tuple]:
    """The probes of transparency-dev/merkle's corruptConsistencyProof, and a few more: none may verify."""
    yield "old - 1", old - 1, new, proof, r1, r2
    yield "old + 1", old + 1, new, proof, r1, r2
    yield "old ^ 2", old ^ 2, new, proof, r1, r2
    yield "new * 2", old, new * 2, proof, r1, r2
    yield "new / 2", old, new // 2, proof, r1, r2
    yield "wrong old root", old, new, proof, SOME_HASH, r2
    yield "wrong new root", old, new, proof, r1, SOME_HASH
    yield "flipped old root", old, new, proof, _flip(r1), r2
    yield "flipped new root", old, new, proof, r1, _flip(r2)
    yield "swapped roots", old, new, proof, r2, r1
    yield "empty proof", old, new, [], r1, r2
    yield "trailing garbage", old, new, [*proof, b""], r1, r2
    yield "trailing old root", old, new, [*proof, r1], r1, r2
    yield "trailing new root", old, new, [*proof, r2], r1, r2
    yield "preceding garbage", old, new, [b"", *proof], r1, r2
    yield "preceding old root", old, new, [r1, *proof], r1, r2
    yield "preceding new root", old, new, [r2, *proof], r1, r2
    yield "preceding proof[0]", old, new, [proof[0], *proof], r1, r2
    yield "truncated", old, new, proof[:-1], r1, r2
    for i in range(len(proof)):
        yield f"flipped proof[{i}]", old, new, [*proof[:i], _flip(proof[i], 4), *proof[i + 1 :]], r1, r2
    if len(proof) > 1:
        yield "reversed", old, new, proof[::-1], r1, r2


def _accepted_inclusion(probes: Iterator[tuple]) -> list[str]:
    return [name for name, *args in probes if verify_inclusion(*args)]


def _accepted_consistency(probes: Iterator[tuple]) -> list[str]:
    return [name for name, *args in probes if verify_consistency(*args)]


@pytest.mark.parametrize(("index", "size", "proof"), [v for v in INCLUSION_VECTORS if v[1] > 1])
def test_reference_inclusion_proofs_fail_once_corrupted(index: int, size: int, proof: list[bytes]) -> None:
    leaf = leaf_hash(LEAF_INPUTS[index])
    assert _accepted_inclusion(_corrupted_inclusion(index, size, proof, leaf, ROOTS[size])) == []


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_reference_consistency_proofs_fail_once_corrupted(old: int, new: int, proof: list[bytes]) -> None:
    assert _accepted_consistency(_corrupted_consistency(old, new, proof, ROOTS[old], ROOTS[new])) == []


# -- trivial and malformed input -----------------------------------------------------------------------------

A, B = ROOTS[3], ROOTS[5]


@pytest.mark.parametrize(
    ("old", "new", "proof", "old_root", "new_root", "holds"),
    [
        pytest.param(0, 0, [], EMPTY_ROOT, EMPTY_ROOT, True, id="empty to empty"),
        pytest.param(0, 5, [], EMPTY_ROOT, B, True, id="the empty tree is a prefix of every tree"),
        pytest.param(3, 3, [], A, A, True, id="a tree is consistent with itself"),
        pytest.param(0, 0, [], A, A, False, id="a tree of 0 leaves has one root"),
        pytest.param(0, 5, [], A, B, False, id="a wrong root for the empty tree"),
        pytest.param(3, 3, [], A, B, False, id="two roots for one size: a split view"),
        pytest.param(3, 3, [A], A, A, False, id="the proof between equal sizes is empty"),
        pytest.param(0, 5, [EMPTY_ROOT], EMPTY_ROOT, B, False, id="the proof from the empty tree is empty"),
        pytest.param(5, 3, [], B, A, False, id="back in time"),
        pytest.param(3, 5, [], A, B, False, id="an empty proof between different sizes (RFC 9162 2.1.4.2 step 1)"),
    ],
)
def test_consistency_where_the_rfc_defines_no_proof(
    old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes, holds: bool
) -> None:
    assert verify_consistency(old, new, proof, old_root, new_root) is holds


def test_the_only_leaf_of_a_tree_of_one_has_an_empty_proof() -> None:
    leaf = leaf_hash(b"data")
    assert MerkleTree([b"data"]).inclusion_proof(0) == []
    assert verify_inclusion(leaf, 0, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 1, [], leaf_hash(b"other"))
    assert not verify_inclusion(leaf, 0, 0, [], leaf)
    assert not verify_inclusion(leaf, 1, 1, [], leaf)


_LEAF0 = leaf_hash(LEAF_INPUTS[0])
_PATH_0_8 = INCLUSION_VECTORS[5][2]
_PROOF_6_8 = CONSISTENCY_VECTORS[2][2]


MALFORMED_INCLUSION: list[tuple[tuple[Any, ...], str]] = [
    ((_LEAF0[:31], 0, 8, _PATH_0_8, ROOTS[8]), "the leaf hash is not a 32-byte hash"),
    ((_LEAF0 + b"\x00", 0, 8, _PATH_0_8, ROOTS[8]), "the leaf hash is not a 32-byte hash"),
    ((_LEAF0.hex(), 0, 8, _PATH_0_8, ROOTS[8]), "the leaf hash is not a 32-byte hash"),
    ((_LEAF0, 0, 8, _PATH_0_8, ROOTS[8][:16]), "the root hash is not a 32-byte hash"),
    ((_LEAF0, 0, 8, [*_PATH_0_8[:2], _PATH_0_8[2][1:]], ROOTS[8]), "proof element 2 is not a 32-byte hash"),
    ((_LEAF0, 0, 8, b"".join(_PATH_0_8), ROOTS[8]), "the proof is not a sequence of hashes"),
    ((_LEAF0, 8, 8, _PATH_0_8, ROOTS[8]), "leaf index 8 is not below tree size 8"),
    ((_LEAF0, -1, 8, _PATH_0_8, ROOTS[8]), "the leaf index is negative"),
    ((_LEAF0, 0, -8, _PATH_0_8, ROOTS[8]), "the tree size is negative"),
    ((_LEAF0, 0, 8.0, _PATH_0_8, ROOTS[8]), "the tree size is not an integer"),
    ((_LEAF0, True, 8, _PATH_0_8, ROOTS[8]), "the leaf index is not an integer"),
    (
        (_LEAF0, 0, 8, _PATH_0_8[:2], ROOTS[8]),
        "an inclusion proof of leaf 0 in a tree of size 8 has 3 hashes, not 2",
    ),
    ((_LEAF0, 0, 8, _PATH_0_8, ROOTS[7]), "the inclusion proof of leaf 0 does not lead to the root of tree size 8"),
]


@pytest.mark.parametrize(("args", "reason"), MALFORMED_INCLUSION, ids=[r for _, r in MALFORMED_INCLUSION])
def test_malformed_inclusion_input_is_refused_with_its_reason(args: tuple[Any, ...], reason: str) -> None:
    assert verify_inclusion(*args) is False
    with pytest.raises(InvalidProof) as refused:
        check_inclusion(*args)
    assert refused.value.reason == reason


MALFORMED_CONSISTENCY: list[tuple[tuple[Any, ...], str]] = [
    ((6, 8, _PROOF_6_8, ROOTS[6][:31], ROOTS[8]), "the old root hash is not a 32-byte hash"),
    ((6, 8, _PROOF_6_8, ROOTS[6], None), "the new root hash is not a 32-byte hash"),
    ((6, 8, [*_PROOF_6_8, b"\x00" * 33], ROOTS[6], ROOTS[8]), "proof element 3 is not a 32-byte hash"),
    ((8, 6, _PROOF_6_8, ROOTS[8], ROOTS[6]), "old tree size 8 is larger than new tree size 6"),
    ((-6, 8, _PROOF_6_8, ROOTS[6], ROOTS[8]), "the old tree size is negative"),
    ((6, "8", _PROOF_6_8, ROOTS[6], ROOTS[8]), "the new tree size is not an integer"),
    ((6, 8, _PROOF_6_8[:2], ROOTS[6], ROOTS[8]), "a consistency proof from size 6 to 8 has 3 hashes, not 2"),
    ((6, 8, _PROOF_6_8, ROOTS[5], ROOTS[8]), "the consistency proof does not lead to the old root (size 6)"),
    ((6, 8, _PROOF_6_8, ROOTS[6], ROOTS[7]), "the consistency proof does not lead to the new root (size 8)"),
    ((0, 8, [], ROOTS[6], ROOTS[8]), "the old root is not the root of the empty tree"),
    ((8, 8, [], ROOTS[6], ROOTS[8]), "two different roots for the same tree size 8"),
    ((8, 8, [ROOTS[8]], ROOTS[8], ROOTS[8]), "a consistency proof from size 8 to 8 is empty"),
]


@pytest.mark.parametrize(("args", "reason"), MALFORMED_CONSISTENCY, ids=[r for _, r in MALFORMED_CONSISTENCY])
def test_malformed_consistency_input_is_refused_with_its_reason(args: tuple[Any, ...], reason: str) -> None:
    assert verify_consistency(*args) is False
    with pytest.raises(InvalidProof) as refused:
        check_consistency(*args)
    assert refused.value.reason == reason


def test_impossible_requests_raise_value_error(reference_tree: MerkleTree) -> None:
    get = reference_tree.get
    for call in (
        lambda: inclusion_proof(8, 8, get),
        lambda: inclusion_proof(0, 0, get),
        lambda: inclusion_proof(-1, 8, get),
        lambda: consistency_proof(6, 5, get),
        lambda: consistency_proof(-1, 5, get),
        lambda: root(-1, get),
        lambda: nodes_completed_by(-1, leaf_hash(b""), get),
        lambda: nodes_completed_by(8, b"not a hash", get),
        lambda: reference_tree.root(9),  # the tree has 8 leaves
        lambda: reference_tree.inclusion_proof(0, 9),
        lambda: reference_tree.consistency_proof(1, 9),
    ):
        with pytest.raises(ValueError):  # noqa: PT011 (each call's message is its own; the type is the contract)
            call()


# -- 2. every proof up to 300 leaves, against RFC 9162 literally ----------------------------------------------


def test_every_root_up_to_300_is_the_rfc9162_mth(small: tuple[MerkleTree, Rfc9162]) -> None:
    tree, rfc = small
    assert [tree.root(n) for n in range(SMALL + 1)] == [rfc.mth(0, n) for n in range(SMALL + 1)]


def test_every_inclusion_proof_up_to_300_is_the_rfc9162_path_and_verifies(small: tuple[MerkleTree, Rfc9162]) -> None:
    tree, rfc = small
    checked = 0
    for size in range(1, SMALL + 1):
        top = tree.root(size)
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert proof == rfc.path(index, 0, size), (index, size)
            assert verify_inclusion(rfc.leaves[index], index, size, proof, top), (index, size)
            checked += 1
    assert checked == SMALL * (SMALL + 1) // 2


def test_every_consistency_proof_up_to_300_is_the_rfc9162_proof_and_verifies(small: tuple[MerkleTree, Rfc9162]) -> None:
    tree, rfc = small
    roots = [tree.root(n) for n in range(SMALL + 1)]
    for new in range(SMALL + 1):
        for old in range(new + 1):
            proof = tree.consistency_proof(old, new)
            assert proof == (rfc.proof(old, new) if 0 < old < new else []), (old, new)
            assert verify_consistency(old, new, proof, roots[old], roots[new]), (old, new)


def test_inclusion_proofs_up_to_300_fail_once_tampered(small: tuple[MerkleTree, Rfc9162]) -> None:
    tree, rfc = small
    accepted = []
    for size in range(2, SMALL + 1):
        top = tree.root(size)
        for index in sorted({0, 1, size // 2, size - 2, size - 1}):
            proof = tree.inclusion_proof(index, size)
            probes = _corrupted_inclusion(index, size, proof, rfc.leaves[index], top)
            accepted += [(index, size, name) for name in _accepted_inclusion(probes)]
    assert accepted == []


def test_consistency_proofs_up_to_300_fail_once_tampered(small: tuple[MerkleTree, Rfc9162]) -> None:
    tree, _ = small
    roots = [tree.root(n) for n in range(SMALL + 1)]
    accepted = []
    for new in range(2, SMALL + 1):
        for old in sorted({1, 2, new // 2, new - 1} - {new}):
            proof = tree.consistency_proof(old, new)
            probes = _corrupted_consistency(old, new, proof, roots[old], roots[new])
            accepted += [(old, new, name) for name in _accepted_consistency(probes)]
    assert accepted == []


def test_a_leaf_is_not_proved_at_another_index(small: tuple[MerkleTree, Rfc9162]) -> None:
    """Every leaf of a 37-leaf tree with every other leaf's proof: only its own verifies."""
    tree, rfc = small
    size = 37
    top = tree.root(size)
    proofs = [tree.inclusion_proof(i, size) for i in range(size)]
    for leaf in range(size):
        verified = [i for i in range(size) if verify_inclusion(rfc.leaves[leaf], i, size, proofs[i], top)]
        assert verified == [leaf]


# -- 3. pymerkle, an independent implementation --------------------------------------------------------------


def test_pymerkle_hashes_as_rfc9162() -> None:
    """Comparing with pymerkle means something only if it hashes as RFC 9162: SHA-256, 0x00 and 0x01 prefixes."""
    tree = InmemoryTree()  # what the comparisons below build, with its defaults
    assert tree.algorithm == "sha256"
    assert tree.security is True  # pymerkle's disable_security drops the prefixes
    assert (tree.leaf_prefix, tree.node_prefix) == (b"\x00", b"\x01")
    assert tree.hash_empty() == EMPTY_ROOT
    assert tree.hash_buff(b"entry") == leaf_hash(b"entry")
    assert tree.hash_pair(ROOTS[1], ROOTS[2]) == node_hash(ROOTS[1], ROOTS[2])
    assert MerkleHasher("sha256").leaf_prefix == b"\x00"
    # And on the reference tree it gives the published roots.
    reference = InmemoryTree.init_from_entries(LEAF_INPUTS)
    assert [reference.get_root(n) for n in range(1, 9)] == [ROOTS[n] for n in range(1, 9)]


def test_roots_and_proofs_up_to_300_agree_with_pymerkle(small: tuple[MerkleTree, Rfc9162]) -> None:
    tree, _ = small
    other = InmemoryTree.init_from_entries(_entries(SMALL))
    for size in range(1, SMALL + 1):
        assert other.get_root(size) == tree.root(size), size
    for size in range(1, SMALL + 1, 7):
        for index in range(size):
            # pymerkle's path is the leaf hash followed by PATH (it counts leaves from 1).
            path = other.prove_inclusion(index + 1, size).path
            assert path == [tree.get(0, index), *tree.inclusion_proof(index, size)], (index, size)
    for new in range(1, SMALL + 1, 7):
        for old in range(1, new + 1):
            _agree_on_consistency(tree, other, old, new)


def _agree_on_consistency(tree: MerkleTree, other: Any, old: int, new: int) -> None:
    """pymerkle's consistency proofs are not RFC 9162's PROOF (its path and split rule differ), so each side
    verifies its own proof against the other side's roots."""
    ours_old, ours_new = tree.root(old), tree.root(new)
    theirs_old, theirs_new = other.get_root(old), other.get_root(new)
    assert verify_consistency(old, new, tree.consistency_proof(old, new), theirs_old, theirs_new), (old, new)
    other.prove_consistency(old, new).verify(ours_old, ours_new, prior_size=old, later_size=new)


# -- random sizes up to 100,000 ------------------------------------------------------------------------------


def test_random_proofs_in_a_tree_of_100000_leaves(large: tuple[MerkleTree, Any]) -> None:
    tree, other = large
    rnd = random.Random(18)
    for _ in range(300):
        size = rnd.randint(1, LARGE)
        index = rnd.randrange(size)
        top = tree.root(size)
        assert top == other.get_root(size), size
        proof = tree.inclusion_proof(index, size)
        assert other.prove_inclusion(index + 1, size).path == [tree.get(0, index), *proof], (index, size)
        assert verify_inclusion(tree.get(0, index), index, size, proof, top)
        assert not verify_inclusion(tree.get(0, index), index, size, [*proof[:-1], _flip(proof[-1])], top)
    for _ in range(300):
        new = rnd.randint(1, LARGE)
        old = rnd.randint(1, new)
        proof = tree.consistency_proof(old, new)
        assert verify_consistency(old, new, proof, tree.root(old), tree.root(new)), (old, new)
        if proof:
            assert not verify_consistency(old, new, [_flip(proof[0]), *proof[1:]], tree.root(old), tree.root(new))
        _agree_on_consistency(tree, other, old, new)


# -- the store: built leaf by leaf, read O(log n) ------------------------------------------------------------


def test_appending_leaf_by_leaf_stores_exactly_the_perfect_subtrees() -> None:
    entries = _entries(SMALL)
    rfc = Rfc9162(entries)
    store: dict[tuple[int, int], bytes] = {}
    reads = 0

    def get(level: int, index: int) -> bytes:
        nonlocal reads
        reads += 1
        return store[(level, index)]

    for size, data in enumerate(entries):
        reads = 0
        completed = nodes_completed_by(size, leaf_hash(data), get)
        # The leaf first, then each parent it completes, bottom up.
        assert completed[0] == (0, size, leaf_hash(data))
        assert [(level, index) for level, index, _ in completed] == [(j, size >> j) for j in range(len(completed))]
        for level, index, value in completed:
            assert (level, index) not in store
            store[(level, index)] = value
        # One read per parent: as many as ``size`` has trailing one bits.
        trailing_ones = (~size & (size + 1)).bit_length() - 1
        assert reads == len(completed) - 1 == trailing_ones <= (size + 1).bit_length()
        count = size + 1
        expected = {(lv, i) for lv in range(count.bit_length()) for i in range(count >> lv)}
        assert set(store) == expected, count
    assert all(value == rfc.mth(index << level, (index + 1) << level) for (level, index), value in store.items())


def test_the_in_memory_tree_keeps_the_same_nodes_as_a_store(small: tuple[MerkleTree, Rfc9162]) -> None:
    tree, rfc = small
    for level in range(SMALL.bit_length()):
        for index in range(SMALL >> level):
            assert tree.get(level, index) == rfc.mth(index << level, (index + 1) << level)
    with pytest.raises(KeyError):
        tree.get(0, SMALL)
    with pytest.raises(KeyError):
        tree.get(0, -1)  # never Python's last element


def test_reads_are_logarithmic_and_within_the_size(
    small: tuple[MerkleTree, Rfc9162], large: tuple[MerkleTree, Any]
) -> None:
    """Every read goes through ``get``, which fails on a node not complete within the size asked."""

    def count(tree: MerkleTree, size: int, name: str, call: Any) -> None:
        reader = CountingReader(tree, size)
        call(reader)
        assert reader.reads <= _log_bound(size), (name, size, reader.reads)

    tree, _ = small
    for size in range(SMALL + 1):
        reader = CountingReader(tree, size)
        root(size, reader)
        assert reader.reads == size.bit_count() <= size.bit_length()
        for index in range(size):
            count(tree, size, "inclusion", lambda get, i=index, n=size: inclusion_proof(i, n, get))
        for old in range(size + 1):
            count(tree, size, "consistency", lambda get, m=old, n=size: consistency_proof(m, n, get))
    big, _ = large
    rnd = random.Random(9162)
    for _ in range(300):
        size = rnd.randint(1, LARGE)
        index, old = rnd.randrange(size), rnd.randint(0, size)
        count(big, size, "root", lambda get, n=size: root(n, get))
        count(big, size, "inclusion", lambda get, i=index, n=size: inclusion_proof(i, n, get))
        count(big, size, "consistency", lambda get, m=old, n=size: consistency_proof(m, n, get))
    # A tree of 2**k - 1 leaves is the worst case for the root: one read per level.
    reader = CountingReader(big, 2**16 - 1)
    root(2**16 - 1, reader)
    assert reader.reads == 16


def test_the_frontier_knows_every_root_and_resumes_from_stored_nodes() -> None:
    tree = merkle.MerkleTree()
    frontier = merkle.Frontier()
    assert frontier.root() == merkle.EMPTY_ROOT
    for i in range(300):
        tree.append(i.to_bytes(4, "big"))
        frontier.push(merkle.leaf_hash(i.to_bytes(4, "big")))
        assert frontier.root() == tree.root(), i
        if i % 37 == 0:
            resumed = merkle.Frontier.of(tree.size, tree.get)
            assert (resumed.size, resumed.root()) == (tree.size, tree.root())
    resumed = merkle.Frontier.of(100, tree.get)
    for i in range(100, 300):
        resumed.push(merkle.leaf_hash(i.to_bytes(4, "big")))
    assert resumed.root() == tree.root()
