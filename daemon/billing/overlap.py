"""Accounts whose docroots on one host are the same, nested or overlapping.

Host work stays inside the account's own tree (invariant 5): a backup of one
account must not hold another's files, and a deletion must not remove them. Two
accounts whose docroots on one host coincide or lie one inside the other share
files, so a sync refuses both rows, naming both accounts, and syncs the rest.
The docroots are compared as paths (component by component), as billing gives
them: the host-side tree check sees to links.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import PurePosixPath

from daemon.billing.listing import Tree, snapshot_trees
from daemon.domain.snapshot import AccountSnapshot, RowError

# (host, docroot parts, account id) for every service with a docroot.
_Tree = tuple[str, tuple[str, ...], str]


def refuse_overlapping_trees(
    snapshots: Sequence[AccountSnapshot], source: str
) -> tuple[tuple[AccountSnapshot, ...], tuple[RowError, ...]]:
    """Split `snapshots` into those whose docroots overlap no other account's on the same
    host, and one RowError (field 'services.docroot', under `source`) per refused account
    naming the accounts it shares a tree with. Billing order is kept."""
    errors = refuse_overlaps(((s.account_id, snapshot_trees(s)) for s in snapshots), source)
    if not errors:
        return tuple(snapshots), ()
    refused = {error.row for error in errors}
    return tuple(s for s in snapshots if s.account_id not in refused), errors


class TreeIndex:
    """Every account's docroots of one sync, kept as 64-bit hashes, to find in the end
    whether any two accounts' trees may overlap without keeping a million paths.

    A hash in common proves nothing (two paths may hash alike), so `suspects` only
    names the hashes to look at; `refuse_overlaps` then decides on the real paths of
    the few accounts whose trees carry them. Paths are cut on '/' with empty and '.'
    parts dropped, which never tells apart two paths PurePosixPath takes as one. The
    hashes are the same in every process (see `tree_hashes`), so a sync can remember
    those of a block of accounts and give them back at the next (`add_hashes`).
    """

    def __init__(self) -> None:
        self.trees: set[int] = set()
        self.doubled: set[int] = set()
        # The hash of every proper ancestor of every tree (the host alone included).
        self.ancestors = array("q")

    def add(self, trees: Iterable[Tree]) -> tuple[set[int], set[int]]:
        """Take one account's (host, docroot) trees; return the hashes taken: those of
        its trees, and those of their ancestors that are not its own trees."""
        own: set[int] = set()
        above: set[int] = set()
        for host, docroot in trees:
            full, parents = tree_hashes(host, docroot)
            own.add(full)
            above.update(parents)
        for full in own:
            if full in self.trees:
                self.doubled.add(full)
            self.trees.add(full)
        above -= own
        self.ancestors.extend(above)
        return own, above

    def add_hashes(self, own: Sequence[int], above: Iterable[int]) -> None:
        """Take the hashes `add` returned for a run of accounts: `own`, each account's
        own trees one after the other, and `above`, their ancestors (in any order, once
        each or more). The same as adding the accounts one by one."""
        fresh = set(own)
        if len(fresh) < len(own):  # two accounts of the run share a tree
            counted: set[int] = set()
            for full in own:
                if full in counted:
                    self.doubled.add(full)
                counted.add(full)
        self.doubled |= fresh & self.trees
        self.trees |= fresh
        self.ancestors.extend(above)

    def suspects(self) -> set[int]:
        """Return the hashes of trees that another account's tree may equal or lie in."""
        trees = self.trees
        return self.doubled | {parent for parent in self.ancestors if parent in trees}


def tree_hashes(host: str, docroot: str) -> tuple[int, list[int]]:
    """Return the hash of a tree and those of its proper ancestors on its host: signed
    64-bit numbers, the same in every process (not Python's salted `hash`)."""
    parts = [part for part in docroot.split("/") if part and part != "."]
    path = host
    parents = []
    for part in parts:
        parents.append(_ancestor_hash(path))
        path = f"{path}\0{part}"
    return _path_hash(path), parents


def _path_hash(path: str) -> int:
    """A path's 64-bit hash (BLAKE2b): paths that differ hash alike once in 2**64."""
    digest = hashlib.blake2b(path.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


# Ancestors are few and shared (the host, /srv, /srv/www): their hashes are kept.
_ancestor_hash = lru_cache(maxsize=4096)(_path_hash)


def involved(trees: Iterable[Tree], suspects: set[int]) -> bool:
    """Whether any of an account's trees, or any of their ancestors, is a suspect."""
    for host, docroot in trees:
        full, parents = tree_hashes(host, docroot)
        if full in suspects or not suspects.isdisjoint(parents):
            return True
    return False


def refuse_overlaps(
    accounts: Iterable[tuple[str, tuple[Tree, ...]]], source: str
) -> tuple[RowError, ...]:
    """Return one RowError (field 'services.docroot', under `source`, `row` the account id)
    per account whose docroots coincide with or nest in another account's on the same
    host, naming the accounts it shares a tree with; `accounts` are (id, trees) pairs."""
    clashes: dict[str, dict[str, str]] = {}
    for (host, outer, owner), (_host, inner, other) in _overlaps(_trees(accounts)):
        for account, peer in ((owner, other), (other, owner)):
            clashes.setdefault(account, {}).setdefault(
                peer, _clash(host, outer, inner, peer, outer_is_mine=account == owner)
            )
    return tuple(
        RowError(
            source,
            account_id,
            "services.docroot",
            "refused, as are the accounts it overlaps (one tree per account): "
            + "; ".join(details.values()),
        )
        for account_id, details in clashes.items()
    )


def _clash(
    host: str, outer: tuple[str, ...], inner: tuple[str, ...], peer: str, *, outer_is_mine: bool
) -> str:
    """One account's side of an overlap, in words."""
    if outer == inner:
        return f"{_path(outer)} on {host} is also the docroot of account {peer!r}"
    if outer_is_mine:
        return f"{_path(outer)} on {host} contains {_path(inner)} of account {peer!r}"
    return f"{_path(inner)} on {host} lies inside {_path(outer)} of account {peer!r}"


def _trees(accounts: Iterable[tuple[str, tuple[Tree, ...]]]) -> list[_Tree]:
    trees = {
        (host, PurePosixPath(docroot).parts, account_id)
        for account_id, account_trees in accounts
        for host, docroot in account_trees
    }
    # Sorted by host, then path parts: a tree's descendants follow it directly.
    return sorted(trees)


def _overlaps(trees: list[_Tree]) -> Iterable[tuple[_Tree, _Tree]]:
    """Yield each pair of different accounts' trees where the first contains (or equals)
    the second. One pass over the sorted trees with a stack of the open ancestors."""
    open_trees: list[_Tree] = []
    for tree in trees:
        host, parts, _account = tree
        while open_trees and not _contains(open_trees[-1], host, parts):
            open_trees.pop()
        for ancestor in open_trees:
            if ancestor[2] != tree[2]:
                yield ancestor, tree
        open_trees.append(tree)


def _contains(tree: _Tree, host: str, parts: tuple[str, ...]) -> bool:
    return tree[0] == host and parts[: len(tree[1])] == tree[1]


def _path(parts: tuple[str, ...]) -> str:
    return str(PurePosixPath(*parts))
