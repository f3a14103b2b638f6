#!/usr/bin/env python3
"""Stand-in for HestiaCP's `v-list-user`, `v-suspend-user`, `v-unsuspend-user`,
`v-backup-user`, `v-restore-user` and `v-delete-user` (run under those names).

Follows the commands' own usage lines and checks, as HestiaCP ships them
(https://github.com/hestiacp/hestiacp, bin/v-*, func/main.sh): too few arguments print
`Usage: NAME ARGS` and exit 1 (E_ARGS); failures print `Error: ...` on stdout and exit
with Hestia's code: 3 for an unknown user ("user NAME doesn't exist"), 5 when the user
is suspended ("user NAME is suspended": v-suspend-user and v-backup-user refuse it),
6 when it is not (v-unsuspend-user), 8 for a full disk ("not enough diskspace available
to perform the backup."), 4 when v-restore-user finds the Unix user already there.
`v-list-user USER json` answers `{"USER": {..., "SUSPENDED": "yes"|"no", ...}}`.

State lives beside the directory the commands are in (BIN/../state):
state/data/users/USER/user.conf in Hestia's KEY='value' lines (HOME, which Hestia
derives from HOMEDIR, is kept there too), backups in state/backup as
USER.YYYY-MM-DD_HH-MM-SS.tar. A file state/full_disk makes the disk full. Every call
is appended to state/calls.log; every archive v-backup-user writes and v-restore-user
reads is appended to state/archives.log as [command, path, size, SHA-256].
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.argv[0]).parent
STATE = BIN.parent / "state"
USERS = STATE / "data" / "users"
BACKUP = STATE / "backup"
USAGE = {
    "v-list-user": (1, "USER [FORMAT]"),
    "v-suspend-user": (1, "USER [RESTART]"),
    "v-unsuspend-user": (1, "USER [RESTART]"),
    "v-backup-user": (1, "USER [NOTIFY]"),
    "v-restore-user": (2, "USER BACKUP [WEB] [DNS] [MAIL] [DB] [CRON] [UDIR] [NOTIFY]"),
    "v-delete-user": (1, "USER [RESTART]"),
}
MAX_ARGS = {name: len(usage.split()) for name, (_, usage) in USAGE.items()}


class HestiaError(Exception):
    """A check failed: `Error: MESSAGE` and exit `code`, as check_result does."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def read_conf(user: str) -> dict[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", user):
        raise HestiaError(2, f"invalid user format :: {user}")
    path = USERS / user / "user.conf"
    if not path.is_file():
        raise HestiaError(3, f"user {user} doesn't exist")
    return dict(re.findall(r"^(\w+)='(.*)'$", path.read_text(), re.MULTILINE))


def write_conf(user: str, conf: dict[str, str]) -> None:
    (USERS / user).mkdir(parents=True, exist_ok=True)
    text = "".join(f"{key}='{value}'\n" for key, value in conf.items())
    (USERS / user / "user.conf").write_text(text)


def not_suspended(user: str, conf: dict[str, str]) -> None:
    if conf["SUSPENDED"] == "yes":
        raise HestiaError(5, f"user {user} is suspended")


def v_list_user(user: str, fmt: str = "shell") -> None:
    conf = read_conf(user)
    if fmt == "json":
        print(json.dumps({user: conf}, indent=4))
    elif fmt in ("shell", "plain", "csv"):
        for key, value in conf.items():
            print(f"{key}: {value}")
    else:
        raise HestiaError(2, f"invalid format :: {fmt}")


def v_suspend_user(user: str, restart: str = "no") -> None:
    conf = read_conf(user)
    not_suspended(user, conf)
    write_conf(user, conf | {"SUSPENDED": "yes"})
    (STATE / "web-suspended").mkdir(exist_ok=True)
    (STATE / "web-suspended" / user).touch()


def v_unsuspend_user(user: str, restart: str = "no") -> None:
    conf = read_conf(user)
    if conf["SUSPENDED"] != "yes":
        raise HestiaError(6, f"user {user} is not suspended")
    write_conf(user, conf | {"SUSPENDED": "no"})
    (STATE / "web-suspended" / user).unlink(missing_ok=True)


def v_backup_user(user: str, notify: str = "no") -> None:
    conf = read_conf(user)
    not_suspended(user, conf)
    if (STATE / "full_disk").exists():
        raise HestiaError(8, "not enough diskspace available to perform the backup.")
    BACKUP.mkdir(exist_ok=True)
    name = f"{user}.{time.strftime('%Y-%m-%d_%H-%M-%S')}.tar"
    with tarfile.open(BACKUP / name, "w") as tar:
        blob = "".join(f"{key}='{value}'\n" for key, value in conf.items()).encode()
        info = tarfile.TarInfo("./hestia/user.conf")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
        tar.add(conf["HOME"], arcname="./home")
    log_archive("v-backup-user", BACKUP / name)
    print(f"-- SYSTEM --\n{user}.conf\n*** 1 domain ***\nLocal: /backup/{name}")


def log_archive(command: str, path: Path) -> None:
    """Append [command, path, size, SHA-256] of an archive written or read to archives.log."""
    blob = path.read_bytes()
    entry = [command, str(path), len(blob), hashlib.sha256(blob).hexdigest()]
    with open(STATE / "archives.log", "a") as log:
        log.write(json.dumps(entry) + "\n")


def v_restore_user(user: str, backup: str, *selection: str) -> None:
    path = BACKUP / backup
    if "/" in backup or not path.is_file():
        raise HestiaError(3, f"backup file {backup} doesn't exist in '/backup' folder")
    try:
        conf = read_conf(user)
        not_suspended(user, conf)
    except HestiaError as error:
        if error.code != 3:
            raise
        if subprocess.run(["getent", "passwd", user], capture_output=True).returncode == 0:
            raise HestiaError(4, "User already exists") from error
    log_archive("v-restore-user", path)
    with tarfile.open(path) as tar:
        text = tar.extractfile("./hestia/user.conf").read().decode()  # type: ignore[union-attr]
        conf = dict(re.findall(r"^(\w+)='(.*)'$", text, re.MULTILINE))
        home = Path(conf["HOME"])
        subprocess.run(["useradd", "--home-dir", str(home), user], check=False)
        staging = home.parent / f".restore-{user}"
        shutil.rmtree(staging, ignore_errors=True)
        members = [m for m in tar.getmembers() if m.name.startswith("./home")]
        tar.extractall(staging, members=members, filter="tar")
        shutil.rmtree(home, ignore_errors=True)
        (staging / "home").rename(home)
        shutil.rmtree(staging)
    info = pwd.getpwnam(user)
    for root, dirs, names in os.walk(home):
        for name in [*dirs, *names]:
            os.lchown(os.path.join(root, name), info.pw_uid, info.pw_gid)
    os.chown(home, info.pw_uid, info.pw_gid)
    write_conf(user, conf | {"SUSPENDED": "no"})
    print(f"-- USER --\n{user}\n-- WEB --\nrestore complete")


def v_delete_user(user: str, restart: str = "no") -> None:
    conf = read_conf(user)
    shutil.rmtree(conf["HOME"], ignore_errors=True)
    subprocess.run(["userdel", user], check=False, capture_output=True)
    shutil.rmtree(USERS / user)
    (STATE / "web-suspended" / user).unlink(missing_ok=True)


COMMANDS: dict[str, Callable[..., None]] = {
    "v-list-user": v_list_user,
    "v-suspend-user": v_suspend_user,
    "v-unsuspend-user": v_unsuspend_user,
    "v-backup-user": v_backup_user,
    "v-restore-user": v_restore_user,
    "v-delete-user": v_delete_user,
}


def main() -> int:
    name, args = Path(sys.argv[0]).name, sys.argv[1:]
    STATE.mkdir(exist_ok=True)
    with open(STATE / "calls.log", "a") as log:
        log.write(json.dumps([name, *args]) + "\n")
    if name not in COMMANDS:
        print(f"{name}: not a command this stand-in knows", file=sys.stderr)
        return 127
    required, usage = USAGE[name]
    if len(args) < required or len(args) > MAX_ARGS[name]:
        print(f"Usage: {name} {usage}")
        return 1
    try:
        COMMANDS[name](*args)
    except HestiaError as error:
        print(f"Error: {error}")
        return error.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
