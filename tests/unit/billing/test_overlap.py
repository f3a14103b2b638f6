"""Accounts whose docroots on one host coincide or nest are refused, both of them."""

from __future__ import annotations

from decimal import Decimal

from daemon.billing.overlap import refuse_overlapping_trees
from daemon.domain.snapshot import AccountSnapshot, Contact, Service


def _account(account_id: str, *services: tuple[str, str]) -> AccountSnapshot:
    return AccountSnapshot(
        account_id=account_id,
        plan="default",
        contact=Contact("Client", f"{account_id}@example.org"),
        balance=Decimal(0),
        currency="EUR",
        services=tuple(Service(host, account_id, docroot) for host, docroot in services),
    )


def _refused(*accounts: AccountSnapshot) -> dict[str, str]:
    kept, errors = refuse_overlapping_trees(accounts, "file:billing.json")
    assert [s.account_id for s in kept] == [
        a.account_id for a in accounts if a.account_id not in {e.row for e in errors}
    ]
    assert {e.field for e in errors} <= {"services.docroot"}
    return {error.row: error.message for error in errors}


def test_separate_trees_and_other_hosts_pass() -> None:
    assert (
        _refused(
            _account("a", ("web1", "/home/a/public_html")),
            _account("b", ("web1", "/home/ab/public_html")),  # a prefix as text, not as a path
            _account("c", ("web2", "/home/a/public_html")),  # the same path on another host
            _account("d", ("web1", "/home/a/public_html2")),
            _account("e"),
        )
        == {}
    )


def test_the_same_docroot_refuses_both_accounts_naming_each_other() -> None:
    refused = _refused(
        _account("alice", ("web1", "/home/alice/public_html")),
        _account("paid", ("web1", "/srv/www/paid")),
        _account("mallory", ("web1", "/home/alice/public_html/")),
    )
    assert refused == {
        "alice": "refused, as are the accounts it overlaps (one tree per account): "
        "/home/alice/public_html on web1 is also the docroot of account 'mallory'",
        "mallory": "refused, as are the accounts it overlaps (one tree per account): "
        "/home/alice/public_html on web1 is also the docroot of account 'alice'",
    }


def test_a_nested_docroot_refuses_the_outer_and_the_inner_account() -> None:
    refused = _refused(
        _account("inner", ("web1", "/srv/www/shop/blog")),
        _account("outer", ("web1", "/srv/www/shop")),
        _account("sibling", ("web1", "/srv/www/shop2")),
        _account("deeper", ("web2", "/x"), ("web1", "/srv/www/shop/blog/media")),
    )
    assert sorted(refused) == ["deeper", "inner", "outer"]
    outer = refused["outer"]
    assert "/srv/www/shop on web1 contains /srv/www/shop/blog of account 'inner'" in outer
    assert "contains /srv/www/shop/blog/media of account 'deeper'" in refused["outer"]
    assert (
        "/srv/www/shop/blog on web1 lies inside /srv/www/shop of account 'outer'"
        in (refused["inner"])
    )
    assert "lies inside /srv/www/shop/blog of account 'inner'" in refused["deeper"]


def test_one_accounts_own_services_may_nest() -> None:
    assert _refused(_account("a", ("web1", "/srv/www/a"), ("web1", "/srv/www/a/blog"))) == {}
