"""Accounts whose docroots on one host are the same, nested or overlapping.

Host work stays inside the account's own tree (invariant 5): a backup of one
account must not hold another's files, and a deletion must not remove them. Two
accounts whose docroots on one host coincide or lie one inside the other share
files, so a sync refuses both rows, naming both accounts, and syncs the rest.
The docroots are compared as paths (component by component), as billing gives
them: the host-side tree check sees to links.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

from daemon.domain.snapshot import AccountSnapshot, RowError

# (host, docroot parts, account id) for every service with a docroot.
_Tree = tuple[str, tuple[str, ...], str]


def refuse_overlapping_trees(
    snapshots: Sequence[AccountSnapshot], source: str
) -> tuple[tuple[AccountSnapshot, ...], tuple[RowError, ...]]:
    """Split `snapshots` into those whose docroots overlap no other account's on the same
    host, and one RowError (field 'services.docroot', under `source`) per refused account
    naming the accounts it shares a tree with. Billing order is kept."""
    clashes: dict[str, dict[str, str]] = {}
    for (host, outer, owner), (_host, inner, other) in _overlaps(_trees(snapshots)):
        for account, peer in ((owner, other), (other, owner)):
            clashes.setdefault(account, {}).setdefault(
                peer, _clash(host, outer, inner, peer, outer_is_mine=account == owner)
            )
    if not clashes:
        return tuple(snapshots), ()
    kept = tuple(s for s in snapshots if s.account_id not in clashes)
    errors = tuple(
        RowError(
            source,
            account_id,
            "services.docroot",
            "refused, as are the accounts it overlaps (one tree per account): "
            + "; ".join(details.values()),
        )
        for account_id, details in clashes.items()
    )
    return kept, errors


def _clash(
    host: str, outer: tuple[str, ...], inner: tuple[str, ...], peer: str, *, outer_is_mine: bool
) -> str:
    """One account's side of an overlap, in words."""
    if outer == inner:
        return f"{_path(outer)} on {host} is also the docroot of account {peer!r}"
    if outer_is_mine:
        return f"{_path(outer)} on {host} contains {_path(inner)} of account {peer!r}"
    return f"{_path(inner)} on {host} lies inside {_path(outer)} of account {peer!r}"


def _trees(snapshots: Iterable[AccountSnapshot]) -> list[_Tree]:
    trees = {
        (service.host, PurePosixPath(service.docroot).parts, snapshot.account_id)
        for snapshot in snapshots
        for service in snapshot.services
        if service.docroot
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
