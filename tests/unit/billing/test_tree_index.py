"""The hashed index of a sync's docroots: it names every overlap as a suspect, and the
exact check on the suspects' paths decides."""

from __future__ import annotations

from daemon.billing.overlap import TreeIndex, involved, refuse_overlaps


def suspects_of(*accounts: tuple[tuple[str, str], ...]) -> set[int]:
    index = TreeIndex()
    for trees in accounts:
        index.add(trees)
    return index.suspects()


def test_separate_trees_raise_no_suspect() -> None:
    assert not suspects_of(
        (("web1", "/srv/www/a"),), (("web1", "/srv/www/b"),), (("web2", "/srv/www/a"),)
    )


def test_the_same_tree_twice_is_a_suspect() -> None:
    a, b = (("web1", "/srv/www/a"),), (("web1", "/srv/www/a/"),)

    suspects = suspects_of(a, b)

    assert suspects and involved(a, suspects) and involved(b, suspects)


def test_a_tree_inside_another_is_a_suspect_for_both() -> None:
    outer, inner = (("web1", "/srv/www"),), (("web1", "/srv/www/./b"),)
    other = (("web1", "/srv/mail"),)

    suspects = suspects_of(outer, inner, other)

    assert involved(outer, suspects) and involved(inner, suspects)
    assert not involved(other, suspects)


def test_an_account_nesting_its_own_trees_is_no_suspect() -> None:
    assert not suspects_of((("web1", "/srv/www/a"), ("web1", "/srv/www/a/shop")))


def test_the_exact_check_refuses_both_sides_of_an_overlap() -> None:
    errors = refuse_overlaps(
        [("a", (("web1", "/srv/www"),)), ("b", (("web1", "/srv/www/b"),))], "db"
    )

    assert sorted(error.row for error in errors) == ["a", "b"]
    assert all(error.field == "services.docroot" for error in errors)
