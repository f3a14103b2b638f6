#!/usr/bin/env python3
"""Stand-in for Plesk's `plesk bin subscription`, `plesk bin pleskbackup` and
`plesk bin pleskrestore` (run as `plesk`).

Follows Plesk's CLI reference for Linux:
- subscription: https://docs.plesk.com/en-US/onyx/cli-linux/using-command-line-utilities/subscription-subscriptions.37768
  (`subscription <command> <subscription name> [options]`; `--webspace-off` suspends,
  `--webspace-on` activates, `--info` shows it, `--remove` / `-r` removes it).
- pleskrestore: https://docs.plesk.com/en-US/obsidian/cli-linux/using-command-line-utilities/pleskrestore-restoration-from-backup.73928
  (`pleskrestore --restore <backup_file> -level domains -filter list:<name>`).
- pleskbackup: the Linux counterpart of
  https://docs.plesk.com/en-US/obsidian/cli-win/using-command-line-utilities/pleskbackupexe-backing-up-content-and-configuration.74262/
  (`pleskbackup --domains-name <name> --output-file=<file>`); the search found no
  Linux page, so its messages here are the stand-in's own.
An unknown command or option prints an error and exits 1, as do an unknown
subscription ("Unable to find domain NAME"), suspending a suspended one, and a full disk
for the backup ("Not enough free disk space to backup selected objects").

State lives beside the directory the command is in (BIN/../state):
state/subscriptions/NAME.json (status "OK" or "Suspended"; login; home). A file
state/full_disk makes the disk full. Every call is appended to state/calls.log; every
archive pleskbackup writes and pleskrestore reads is appended to state/archives.log as
[command, path, size, SHA-256].
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

BIN = Path(sys.argv[0]).parent
STATE = BIN.parent / "state"
SUBSCRIPTIONS = STATE / "subscriptions"


class PleskError(Exception):
    """The utility fails: the message on stderr and exit 1."""


def load(name: str) -> dict[str, Any]:
    path = SUBSCRIPTIONS / f"{name}.json"
    if "/" in name or not path.is_file():
        raise PleskError(f"Unable to find domain {name}")
    return dict(json.loads(path.read_text()))


def save(name: str, data: dict[str, Any]) -> None:
    SUBSCRIPTIONS.mkdir(parents=True, exist_ok=True)
    (SUBSCRIPTIONS / f"{name}.json").write_text(json.dumps(data))


def subscription(args: list[str]) -> str:
    if len(args) != 2:
        raise PleskError("Usage: subscription <command> <subscription name> [options]")
    command, name = args
    data = load(name)
    if command == "--info" or command == "-i":
        return (
            f"General\n=========================\nDomain name:        {name}\n"
            f"Domain status:      {data['status']}\nFTP Login:          {data['login']}\n"
        )
    if command == "--webspace-off":
        if data["status"] != "OK":
            raise PleskError(f"Subscription {name} is already suspended")
        save(name, data | {"status": "Suspended"})
        (STATE / "suspended").mkdir(exist_ok=True)
        (STATE / "suspended" / name).touch()
        return f"SUCCESS: Subscription {name} is suspended"
    if command == "--webspace-on":
        if data["status"] == "OK":
            raise PleskError(f"Subscription {name} is already active")
        save(name, data | {"status": "OK"})
        (STATE / "suspended" / name).unlink(missing_ok=True)
        return f"SUCCESS: Subscription {name} is activated"
    if command in ("--remove", "-r"):
        shutil.rmtree(data["home"], ignore_errors=True)
        subprocess.run(["userdel", data["login"]], check=False, capture_output=True)
        (SUBSCRIPTIONS / f"{name}.json").unlink()
        return f"SUCCESS: Removal of '{name}' complete."
    raise PleskError(f"Unknown command: {command}")


def pleskbackup(args: list[str]) -> str:
    names: list[str] = []
    output = None
    rest = list(args)
    if not rest or rest.pop(0) != "--domains-name":
        raise PleskError("Usage: pleskbackup --domains-name <name> [options]")
    while rest and not rest[0].startswith("-"):
        names.append(rest.pop(0))
    for option in rest:
        if option.startswith("--output-file="):
            output = Path(option.split("=", 1)[1])
        else:
            raise PleskError(f"Unknown option: {option}")
    if not names or output is None or not output.is_absolute():
        raise PleskError("Usage: pleskbackup --domains-name <name> --output-file=<file>")
    subscriptions = [(name, load(name)) for name in names]
    if (STATE / "full_disk").exists():
        raise PleskError("Not enough free disk space to backup selected objects")
    with tarfile.open(output, "w") as tar:
        for name, data in subscriptions:
            blob = json.dumps(data).encode()
            info = tarfile.TarInfo(f"{name}/subscription.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            tar.add(data["home"], arcname=f"{name}/home")
    log_archive("pleskbackup", output)
    return f"Backup of {' '.join(names)} written to {output}"


def log_archive(command: str, path: Path) -> None:
    """Append [command, path, size, SHA-256] of an archive written or read to archives.log."""
    blob = path.read_bytes()
    entry = [command, str(path), len(blob), hashlib.sha256(blob).hexdigest()]
    with open(STATE / "archives.log", "a") as log:
        log.write(json.dumps(entry) + "\n")


def pleskrestore(args: list[str]) -> str:
    usage = "Usage: pleskrestore --restore <backup_file> -level domains -filter list:<name>"
    if len(args) != 6 or args[0] != "--restore" or args[2:4] != ["-level", "domains"]:
        raise PleskError(usage)
    if args[4] != "-filter" or not args[5].startswith("list:"):
        raise PleskError(usage)
    path, name = Path(args[1]), args[5].removeprefix("list:")
    if not path.is_file():
        raise PleskError(f"Backup file {path} does not exist")
    if (SUBSCRIPTIONS / f"{name}.json").exists():
        raise PleskError(f"Domain {name} already exists")
    log_archive("pleskrestore", path)
    with tarfile.open(path) as tar:
        data = json.loads(tar.extractfile(f"{name}/subscription.json").read())  # type: ignore[union-attr]
        home = Path(data["home"])
        subprocess.run(["useradd", "--home-dir", str(home), data["login"]], check=False)
        staging = home.parent / f".restore-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        members = [m for m in tar.getmembers() if m.name.startswith(f"{name}/home")]
        tar.extractall(staging, members=members, filter="tar")
        shutil.rmtree(home, ignore_errors=True)
        (staging / name / "home").rename(home)
        shutil.rmtree(staging)
    info = pwd.getpwnam(data["login"])
    for root, dirs, names in os.walk(home):
        for entry in [*dirs, *names]:
            os.lchown(os.path.join(root, entry), info.pw_uid, info.pw_gid)
    os.chown(home, info.pw_uid, info.pw_gid)
    save(name, data | {"status": "OK"})
    return f"Restoration of {name} complete"


UTILITIES = {"subscription": subscription, "pleskbackup": pleskbackup, "pleskrestore": pleskrestore}


def main() -> int:
    args = sys.argv[1:]
    STATE.mkdir(exist_ok=True)
    with open(STATE / "calls.log", "a") as log:
        log.write(json.dumps([Path(sys.argv[0]).name, *args]) + "\n")
    if len(args) < 2 or args[0] != "bin" or args[1] not in UTILITIES:
        print("Usage: plesk bin <utility> [arguments]", file=sys.stderr)
        return 1
    try:
        print(UTILITIES[args[1]](args[2:]))
    except PleskError as error:
        print(f"An error occurred: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
