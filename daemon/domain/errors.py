"""The root of every error Lapse raises on purpose, and the few that belong to no one room.

Each room defines its own errors beside its code, all under `LapseError`, so a
caller that must not crash (the service loop, the CLI's exit-code mapping) can
catch everything Lapse means to raise in one clause, and a bug (a KeyError, a
TypeError) still surfaces as one. The whole family, by room:

    LapseError
    ├── UnknownAccountError              here: an account the state database lacks
    ├── ConfigError                      config.load: the config cannot be used
    │   └── SecretError                  config.secrets: a secret cannot be read
    ├── StateStoreError                  store.errors: the state database refused
    │   ├── WriterLockHeldError          store.writer_lock: another daemon writes
    │   └── MissingStateError            store.errors: no state database there yet
    ├── BillingError                     billing.base: a source cannot be read
    ├── FieldError                       billing.fields: one billing field is bad
    ├── BadRowError                      billing.flat_account: one row is bad
    ├── CommandRefusedError (ValueError) policy.commands: an operator command refused
    ├── TransportError                   transport.base: cannot reach or talk to a host
    │   └── HostKeyError                 the host key is unknown or changed
    ├── CommandError                     transport.base: a host command failed
    ├── NoticeError                      notices.errors
    │   ├── RenderError                  a template failed
    │   ├── AddressError                 a recipient address is unusable
    │   └── DeliveryError                notices.delivery.base
    │       ├── TemporaryDeliveryError   try again later
    │       └── PermanentDeliveryError   never try again
    ├── BackupError                      backup.errors
    │   ├── BackupCancelledError         a payment or a stop cancelled it
    │   ├── UnknownBackupError           no such backup id
    │   ├── ProofError                   backup.proof: the backup failed its proof
    │   ├── ProtectionError              backup.proof: it cannot be protected
    │   ├── TreeError                    backup.tree: a path outside the account's tree
    │   ├── PanelArchiveError            backup.panel_archive: a panel archive refused
    │   └── DeletionRefusedError         backup.gate: deletion is not proven safe
    ├── BackupStoreError                 backup.stores.base: the backup store refused
    ├── UnsafeArchiveError               backup.archive: an archive member is refused
    ├── GateClosedError                  backup.relay: the restore gate closed
    ├── TargetError (ValueError)         backup.staging: a restore target is refused
    ├── UnsafeValueError (ValueError)    backup.commands: a value unsafe in a command
    ├── TooLargeError (ValueError)       backup.sizing: over the configured size
    ├── ListingError (ValueError)        backup.restore_listing: a listing refused
    ├── TemplateError                    playbooks.templating: a playbook value is bad
    ├── StepFailedError                  playbooks.steps.base: a step failed
    ├── StepCancelledError               playbooks.steps.base: a step was cancelled
    ├── RunInterruptedError              playbooks.errors: the daemon is stopping
    ├── RunCancelledError                playbooks.errors: a payment cancelled the run
    ├── ClaimLostError                   playbooks.errors: another daemon took the phase over
    ├── NothingToDecideError (ValueError) lifecycle.approvals: no phase waits for approval
    ├── BodyError                        runtime.http.requests: a request body refused
    ├── SignatureError                   runtime.http.signatures: a bad webhook signature
    ├── BadEventError                    runtime.http.server: a webhook event refused
    └── ProbeError                       runtime.probes: a part answered wrongly

`RowError` (domain.snapshot) is not an exception: it is one bad billing row,
reported and skipped, never raised.
"""

from __future__ import annotations


class LapseError(Exception):
    """Anything Lapse raises on purpose; see the module docstring for the family."""


class UnknownAccountError(LapseError):
    """An operator named an account the state database does not know."""
