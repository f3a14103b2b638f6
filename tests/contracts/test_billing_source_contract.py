"""The billing source contract: what the lifecycle engine, the playbook runner and the CLI
rely on from every source (daemon/billing/base.py), checked against each of them.

- `fetch_all` lists every account as a snapshot, and the same billing data gives the
  same snapshots whatever system it is kept in;
- `fetch_one` reads one account afresh (a payment made since the last sync shows), and
  answers None for an account the source does not list or cannot read;
- a malformed account is skipped with a RowError naming its row and field, and the
  others are still listed: one bad row never stops the sync;
- a source that cannot be reached raises BillingError (a LapseError), from both calls.

To add a billing source: write a lab for it in tests/contracts/billing_labs.py (a
BillingLab that puts accounts where the source reads them, in the system's own format,
and builds the source from its config section), then add one line to IMPLEMENTATIONS
below. Every check here then runs against it.

Each check is a plain function of a lab, so `test_a_broken_source_fails_the_check`
can run it against a deliberately broken source and show that it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from daemon.billing.base import BillingError, BillingSource
from daemon.billing.file import FileSource
from daemon.billing.listing import Listed, Listing, Refused, every_account
from daemon.config.schema import FileBilling
from daemon.domain.errors import LapseError
from daemon.domain.snapshot import (
    AccountSnapshot,
    Contact,
    Invoice,
    LineItem,
    Service,
    SyncResult,
)
from tests.contracts.billing_labs import (
    BillingLab,
    FileCsvLab,
    FileJsonLab,
    HttpLab,
    StripeLab,
    WhmcsLab,
    postgresql_lab,
    sqlite_lab,
)
from tests.contracts.kit import Kit, check_fails

# One entry per billing source: a factory taking a Kit and returning its BillingLab.
IMPLEMENTATIONS = [
    pytest.param(FileJsonLab, id="file-json"),
    pytest.param(FileCsvLab, id="file-csv"),
    pytest.param(sqlite_lab, id="sql-sqlite"),
    pytest.param(postgresql_lab, id="sql-postgresql"),
    pytest.param(HttpLab, id="http"),
    pytest.param(WhmcsLab, id="whmcs"),
    pytest.param(StripeLab, id="stripe"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def lab(request: pytest.FixtureRequest, kit: Kit) -> BillingLab:
    factory: Callable[[Kit], BillingLab] = request.param
    return factory(kit)


def _midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


# What every source can carry (WHMCS and Stripe set the limits): one service with one
# domain, dates at midnight UTC, no time zone, databases, instalments or exemption; a
# language or none (the brand's), as each system spells it (WHMCS: 'portuguese-br').
ACCOUNTS = (
    AccountSnapshot(
        account_id="1001",
        plan="default",
        contact=Contact(name="Rita Riverside", email="rita@bakery.example", language="de"),
        balance=Decimal("13.56"),
        currency="EUR",
        invoices=(
            Invoice(
                id="2026-0142",
                due_at=_midnight(2026, 10, 16),
                total=Decimal("23.56"),
                amount_due=Decimal("13.56"),  # partly paid
                currency="EUR",
                items=(
                    LineItem("Starter hosting, October", Decimal("9.90")),
                    LineItem("Shop hosting, October", Decimal("15.66")),
                    LineItem("Loyalty discount", Decimal("-2.00")),
                ),
            ),
        ),
        services=(Service("web1", "bakery", "/srv/www/bakery", ("bakery.example",)),),
        created_at=_midnight(2024, 3, 2),
    ),
    AccountSnapshot(
        account_id="1002",
        plan="default",
        contact=Contact(name="Acme Tools", email="billing@acme.example"),
        balance=Decimal(0),
        currency="EUR",
        services=(Service("web2", "acme", "/srv/www/acme", ("acme.example",)),),
        created_at=_midnight(2023, 11, 20),
    ),
    AccountSnapshot(
        account_id="1003",
        plan="default",
        contact=Contact(name="Olaf Ohne", email="olaf@example.net", language="pt_BR"),
        balance=Decimal("42.00"),
        currency="USD",
        invoices=(
            Invoice(
                id="2026-0150",
                due_at=_midnight(2026, 9, 1),
                total=Decimal("30.00"),
                amount_due=Decimal("30.00"),
                currency="USD",
                items=(LineItem("Business hosting, quarterly", Decimal("30.00")),),
            ),
            Invoice(
                id="2026-0151",
                due_at=_midnight(2026, 10, 1),
                total=Decimal("12.00"),
                amount_due=Decimal("12.00"),
                currency="USD",
                items=(LineItem("Domain olaf.example", Decimal("12.00")),),
            ),
        ),
        services=(Service("web1", "olaf", "/srv/www/olaf", ("olaf.example",)),),
        created_at=_midnight(2025, 6, 1),
    ),
)


def as_listed(lab: BillingLab, accounts: Sequence[AccountSnapshot]) -> list[AccountSnapshot]:
    """The snapshots the lab's source should make of `accounts`, ordered by account id."""
    named = [
        replace(account, account_id=lab.account_id(account.account_id)) for account in accounts
    ]
    return sorted(named, key=lambda account: account.account_id)


def by_id(snapshots: Sequence[AccountSnapshot]) -> list[AccountSnapshot]:
    """`snapshots` ordered by account id (the order of a listing is no part of the contract)."""
    return sorted(snapshots, key=lambda snapshot: snapshot.account_id)


# --- the checks ------------------------------------------------------------------------


def check_lists_every_account(lab: BillingLab) -> None:
    lab.publish(ACCOUNTS)

    result = lab.source().fetch_all()

    assert result.errors == ()
    assert by_id(result.snapshots) == as_listed(lab, ACCOUNTS)


def check_lists_nothing_when_there_is_nothing(lab: BillingLab) -> None:
    lab.publish([])

    assert lab.source().fetch_all() == SyncResult(snapshots=(), errors=())


def check_reads_one_account_afresh(lab: BillingLab) -> None:
    lab.publish(ACCOUNTS)
    source = lab.source()
    rita = lab.account_id("1001")
    assert source.fetch_one(rita) == as_listed(lab, ACCOUNTS[:1])[0]
    source.fetch_all()

    # Rita pays after the sync; a read right before a destructive step must see it.
    paid = replace(ACCOUNTS[0], invoices=(), balance=Decimal(0))
    lab.publish([paid, *ACCOUNTS[1:]])

    assert source.fetch_one(rita) == as_listed(lab, [paid])[0]
    assert source.fetch_one(lab.account_id("1999")) is None


def check_skips_a_malformed_account_naming_row_and_field(lab: BillingLab) -> None:
    acme = ACCOUNTS[1]
    broken = replace(acme, contact=replace(acme.contact, email="not-an-address"))
    accounts = [ACCOUNTS[0], broken, ACCOUNTS[2]]
    lab.publish(accounts)
    source = lab.source()

    result = source.fetch_all()

    assert by_id(result.snapshots) == as_listed(lab, [ACCOUNTS[0], ACCOUNTS[2]])
    assert len(result.errors) == 1, result.errors
    (error,) = result.errors
    assert (error.row, error.field) == (lab.row_of(accounts, acme.account_id), lab.email_field)
    assert "'not-an-address'" in error.message
    assert source.fetch_one(lab.account_id(acme.account_id)) is None


def check_an_unknown_language_is_the_brands(lab: BillingLab) -> None:
    rita, acme = ACCOUNTS[0], ACCOUNTS[1]
    unknown = replace(rita, contact=replace(rita.contact, language="xx"))
    lab.publish([unknown, acme])

    result = lab.source().fetch_all()

    assert result.errors == ()  # never an error: the brand's language applies
    rita_read = next(s for s in result.snapshots if s.account_id == lab.account_id("1001"))
    assert rita_read.contact.language is None


def check_streams_what_it_fetches(lab: BillingLab) -> None:
    acme = ACCOUNTS[1]
    broken = replace(acme, contact=replace(acme.contact, email="not-an-address"))
    lab.publish([ACCOUNTS[0], broken, ACCOUNTS[2]])
    source = lab.source()

    snapshots, errors, digests = [], [], {}
    for listing in every_account(source.stream()):
        if isinstance(listing, Refused):
            errors.append(listing.error)
            continue
        assert isinstance(listing, Listed), listing  # nothing recalled: no scattered rows
        read = listing.read()
        if isinstance(read, Refused):
            errors.append(read.error)
            continue
        snapshots.append(read)
        digests[listing.account_id] = listing.digest
    result = source.fetch_all()

    assert by_id(snapshots) == by_id(result.snapshots)
    assert sorted(map(str, errors)) == sorted(map(str, result.errors))
    again = {
        item.account_id: item.digest
        for item in every_account(source.stream())
        if isinstance(item, Listed)
    }
    assert {key: again[key] for key in digests} == digests  # the same data, the same digest


def check_an_unreachable_source_raises_billing_error(lab: BillingLab) -> None:
    source = lab.unreachable()

    with pytest.raises(BillingError) as unreachable:
        source.fetch_all()
    assert isinstance(unreachable.value, LapseError)
    assert str(unreachable.value)
    with pytest.raises(BillingError):
        source.fetch_one(lab.account_id("1001"))


# --- the contract, run against every source --------------------------------------------


def test_lists_every_account_with_the_same_values_in_every_source(lab: BillingLab) -> None:
    check_lists_every_account(lab)


def test_an_empty_billing_system_lists_nothing_without_an_error(lab: BillingLab) -> None:
    check_lists_nothing_when_there_is_nothing(lab)


def test_reads_one_account_afresh(lab: BillingLab) -> None:
    check_reads_one_account_afresh(lab)


def test_a_malformed_account_is_skipped_naming_row_and_field(lab: BillingLab) -> None:
    check_skips_a_malformed_account_naming_row_and_field(lab)


def test_an_unreachable_source_raises_billing_error(lab: BillingLab) -> None:
    check_an_unreachable_source_raises_billing_error(lab)


def test_an_unknown_language_reads_as_the_brands_without_an_error(lab: BillingLab) -> None:
    check_an_unknown_language_is_the_brands(lab)


def test_a_sync_stream_lists_what_a_full_read_gives(lab: BillingLab) -> None:
    check_streams_what_it_fetches(lab)


# --- the checks can fail ---------------------------------------------------------------


class _OwesTheTotal(FileSource):
    """Reports every invoice's total as still owed, partial payments forgotten."""

    def fetch_all(self) -> SyncResult:
        result = super().fetch_all()
        return replace(
            result,
            snapshots=tuple(
                replace(
                    snapshot,
                    invoices=tuple(
                        replace(invoice, amount_due=invoice.total) for invoice in snapshot.invoices
                    ),
                )
                for snapshot in result.snapshots
            ),
        )


class _RemembersTheLastSync(FileSource):
    """Answers fetch_one from the last fetch_all instead of reading the file again."""

    last: SyncResult | None = None

    def fetch_all(self) -> SyncResult:
        self.last = super().fetch_all()
        return self.last

    def fetch_one(self, account_id: str) -> AccountSnapshot | None:
        listing = self.last or self.fetch_all()
        return next((s for s in listing.snapshots if s.account_id == account_id), None)


class _ChangesEachSnapshot(FileSource):
    """Lists every account as `change` makes it over."""

    def change(self, snapshot: AccountSnapshot) -> AccountSnapshot:
        raise NotImplementedError

    def fetch_all(self) -> SyncResult:
        result = super().fetch_all()
        return replace(result, snapshots=tuple(map(self.change, result.snapshots)))


class _ForgetsTheLanguage(_ChangesEachSnapshot):
    """Lists every contact without its language: every notice in the brand's."""

    def change(self, snapshot: AccountSnapshot) -> AccountSnapshot:
        return replace(snapshot, contact=replace(snapshot.contact, language=None))


class _KeepsAnUnknownLanguage(_ChangesEachSnapshot):
    """Passes a language CLDR does not know on to the notices."""

    def change(self, snapshot: AccountSnapshot) -> AccountSnapshot:
        if snapshot.account_id != "1001":
            return snapshot
        return replace(snapshot, contact=replace(snapshot.contact, language="xx"))


class _HidesRowErrors(FileSource):
    """Drops the RowErrors: a skipped account goes unreported."""

    def fetch_all(self) -> SyncResult:
        return replace(super().fetch_all(), errors=())


class _ListsNothingWhenUnreachable(FileSource):
    """Turns 'cannot read' into 'no accounts': to the engine, every account left billing."""

    def fetch_all(self) -> SyncResult:
        try:
            return super().fetch_all()
        except BillingError:
            return SyncResult(snapshots=())


class _StreamsAllButTheLast(FileSource):
    """Lists every account but the last to a sync: it never hears of that one."""

    def stream(self) -> Iterator[Listing]:
        listings = list(super().stream())
        return iter(listings[:-1])


class _BrokenLab(FileJsonLab):
    """The JSON file lab with a broken source in place of the file source."""

    def __init__(self, kit: Kit, broken: type[FileSource]) -> None:
        super().__init__(kit)
        self.broken = broken

    def source(self) -> BillingSource:
        return self.broken(FileBilling(type="file", path=self.path))

    def unreachable(self) -> BillingSource:
        return self.broken(FileBilling(type="file", path=self.path.with_name("gone.json")))


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_OwesTheTotal, check_lists_every_account),
        (_ForgetsTheLanguage, check_lists_every_account),
        (_KeepsAnUnknownLanguage, check_an_unknown_language_is_the_brands),
        (_RemembersTheLastSync, check_reads_one_account_afresh),
        (_HidesRowErrors, check_skips_a_malformed_account_naming_row_and_field),
        (_ListsNothingWhenUnreachable, check_an_unreachable_source_raises_billing_error),
        (_StreamsAllButTheLast, check_streams_what_it_fetches),
    ],
)
def test_a_broken_source_fails_the_check(
    kit: Kit, broken: type[FileSource], check: Callable[[BillingLab], None]
) -> None:
    check_fails(lambda: check(_BrokenLab(kit, broken)))
