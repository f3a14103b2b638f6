#!/usr/bin/env python3
"""Stand-in for cPanel & WHM's `whmapi1`, `pkgacct`, `restorepkg` (run under those names).

Checks each call against the documented usage and answers as documented:
- whmapi1: https://api.docs.cpanel.net/openapi/whm/operation/suspendacct/ (and the
  unsuspendacct, accountsummary and removeacct pages of the same reference): `whmapi1
  [--output=json|jsonpretty|yaml] FUNCTION key=value ...`, answering
  `{"metadata": {"command", "result", "reason", "version"}, "data": ...}`; a failure is
  `result: 0` with a reason, and the command itself still exits 0.
- pkgacct: https://docs.cpanel.net/whm/scripts/the-pkgacct-script/ (`pkgacct [options]
  USER [DIR]`, writing DIR/cpmove-USER.tar.gz).
- restorepkg: https://docs.cpanel.net/whm/scripts/the-restorepkg-script/ (`restorepkg
  [--force] FILE`).

State lives beside the directory the commands are in (BIN/../state), laid out like the
panel's own: state/var/cpanel/users/USER (JSON here), state/var/cpanel/suspended/USER
(holding the reason, as suspendacct writes it). A file state/full_disk makes the disk
full for pkgacct and restorepkg. Every call is appended to state/calls.log; every
archive pkgacct writes and restorepkg reads is appended to state/archives.log as
[command, path, size, SHA-256], so a test can tell the restored bytes are the packaged
ones. A file state/plant_symlink (holding a path) stands for a panel that writes through
a symlink: pkgacct then leaves DIR/cpmove-USER.tar.gz as a symlink to that path.
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
USERS = STATE / "var" / "cpanel" / "users"
SUSPENDED = STATE / "var" / "cpanel" / "suspended"
USAGE = "Usage: whmapi1 [--output=FORMAT] FUNCTION [KEY=VALUE ...]"
PARAMS = {
    "suspendacct": ({"user"}, {"user", "reason", "disallowun", "leave-ftp-accts-enabled"}),
    "unsuspendacct": ({"user"}, {"user", "retain-service-proxies"}),
    "accountsummary": (set(), {"user", "domain"}),
    "removeacct": ({"username"}, {"username", "keepdns"}),
}


def account(user: str) -> dict[str, Any] | None:
    path = USERS / user
    return json.loads(path.read_text()) if path.is_file() else None


def save(user: str, data: dict[str, Any]) -> None:
    USERS.mkdir(parents=True, exist_ok=True)
    (USERS / user).write_text(json.dumps(data))


def whm_answer(command: str, result: int, reason: str, data: Any = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "metadata": {"command": command, "result": result, "reason": reason, "version": 1}
    }
    if data is not None:
        answer["data"] = data
    return answer


def whm_call(command: str, args: dict[str, str]) -> dict[str, Any]:
    if command not in PARAMS:
        return whm_answer(
            command, 0, f"Unknown app (“{command}”) requested for this version (1) of the API."
        )
    required, allowed = PARAMS[command]
    for key in sorted(set(args) - allowed):
        return whm_answer(command, 0, f"The parameter “{key}” is not valid for “{command}”.")
    for key in sorted(required - set(args)):
        return whm_answer(command, 0, f"Missing required parameter: “{key}”.")
    if command == "accountsummary" and not ({"user", "domain"} & set(args)):
        return whm_answer(command, 0, "You must specify either “user” or “domain”.")
    user = args.get("user") or args.get("username", "")
    data = account(user)
    if data is None:
        return whm_answer(command, 0, f"The user “{user}” does not exist.")
    if command == "accountsummary":
        acct = {
            "user": user,
            "domain": data["domain"],
            "suspended": int(data["suspended"]),
            "suspendreason": data["reason"] if data["suspended"] else "not suspended",
            "partition": "home",
        }
        return whm_answer(command, 1, "OK", {"acct": [acct]})
    if command == "suspendacct":
        if args.get("disallowun", "0") not in ("0", "1"):
            return whm_answer(command, 0, "The “disallowun” parameter must be 0 or 1.")
        if data["suspended"]:
            return whm_answer(command, 0, f"The account “{user}” is already suspended.")
        data.update(suspended=True, reason=args.get("reason", "Unknown"))
        data["disallowun"] = args.get("disallowun") == "1"
        save(user, data)
        SUSPENDED.mkdir(parents=True, exist_ok=True)
        (SUSPENDED / user).write_text(data["reason"] + "\n")
        answer = whm_answer(command, 1, "OK")
        answer["metadata"]["output"] = {"raw": "Suspending websites... Done"}
        return answer
    if command == "unsuspendacct":
        if not data["suspended"]:
            return whm_answer(command, 0, f"The account “{user}” is not suspended.")
        data.update(suspended=False, reason="", disallowun=False)
        save(user, data)
        (SUSPENDED / user).unlink(missing_ok=True)
        return whm_answer(command, 1, "OK")
    # removeacct: the account, its home directory and its Unix user go.
    shutil.rmtree(data["home"], ignore_errors=True)
    subprocess.run(["userdel", user], check=False, capture_output=True)
    (USERS / user).unlink()
    (SUSPENDED / user).unlink(missing_ok=True)
    return whm_answer(command, 1, "OK", {"rawout": f"Removing account {user}... Done"})


def whmapi1(argv: list[str]) -> int:
    output = "yaml"
    while argv and argv[0].startswith("--"):
        option = argv.pop(0)
        if option.startswith("--output=") and option[9:] in ("json", "jsonpretty", "yaml", "xml"):
            output = option[9:]
        else:
            print(f"Unknown option: {option}\n{USAGE}", file=sys.stderr)
            return 1
    if not argv:
        print(USAGE, file=sys.stderr)
        return 1
    command, pairs = argv[0], argv[1:]
    args = {}
    for pair in pairs:
        if "=" not in pair:
            print(f"Invalid argument “{pair}”: arguments are KEY=VALUE", file=sys.stderr)
            return 1
        key, value = pair.split("=", 1)
        args[key] = value
    answer = whm_call(command, args)
    if output.startswith("json"):
        print(json.dumps(answer, indent=2 if output == "jsonpretty" else None))
    else:
        print("---\n" + json.dumps(answer))
    return 0


def pkgacct(argv: list[str]) -> int:
    options = [arg for arg in argv if arg.startswith("--")]
    known = {"--skiphomedir", "--nocompress", "--compress", "--incremental"}
    for option in options:
        if option not in known:
            print(f"pkgacct: Unknown option: {option}", file=sys.stderr)
            return 1
    rest = [arg for arg in argv if not arg.startswith("--")]
    if not rest or len(rest) > 2:
        print("Usage: pkgacct [options] USER [DIR]", file=sys.stderr)
        return 1
    user = rest[0]
    target = Path(rest[1]) if len(rest) == 2 else STATE / "home"
    data = account(user)
    if data is None:
        print(f"pkgacct: Unable to find the user “{user}”.", file=sys.stderr)
        return 1
    if not target.is_dir():
        print(f"pkgacct: The directory “{target}” does not exist.", file=sys.stderr)
        return 1
    archive = target / f"cpmove-{user}.tar.gz"
    if (STATE / "full_disk").exists():
        print(f"pkgacct: Failed to write {archive}: No space left on device", file=sys.stderr)
        return 1
    print("pkgacct started.")
    planted = STATE / "plant_symlink"
    if planted.exists():
        archive.symlink_to(planted.read_text().strip())
        print("pkgacct completed")
        return 0
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"cpmove-{user}/cp/{user}")
        blob = json.dumps(data).encode()
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
        if "--skiphomedir" not in options:
            tar.add(data["home"], arcname=f"cpmove-{user}/homedir")
    log_archive("pkgacct", archive)
    print("pkgacct completed")
    return 0


def log_archive(command: str, path: Path) -> None:
    """Append [command, path, size, SHA-256] of an archive written or read to archives.log."""
    blob = path.read_bytes()
    entry = [command, str(path), len(blob), hashlib.sha256(blob).hexdigest()]
    with open(STATE / "archives.log", "a") as log:
        log.write(json.dumps(entry) + "\n")


def restorepkg(argv: list[str]) -> int:
    force = False
    files = []
    for arg in argv:
        if arg == "--force":
            force = True
        elif arg.startswith("--"):
            print(f"restorepkg: Unknown option: {arg}", file=sys.stderr)
            return 1
        else:
            files.append(arg)
    if len(files) != 1:
        print("Usage: restorepkg [--force] FILE", file=sys.stderr)
        return 1
    path = Path(files[0])
    if not path.is_file():
        print(f"restorepkg: The file “{path}” does not exist.", file=sys.stderr)
        return 1
    if (STATE / "full_disk").exists():
        print("restorepkg: No space left on device", file=sys.stderr)
        return 1
    log_archive("restorepkg", path)
    with tarfile.open(path) as tar:
        top = tar.getnames()[0].split("/")[0]
        user = top.removeprefix("cpmove-")
        if account(user) is not None and not force:
            print(f"restorepkg: The account “{user}” already exists.", file=sys.stderr)
            return 1
        data = json.loads(tar.extractfile(f"{top}/cp/{user}").read())  # type: ignore[union-attr]
        home = Path(data["home"])
        subprocess.run(
            ["useradd", "--home-dir", str(home), "--no-create-home", user],
            check=False,
            capture_output=True,
        )
        staging = home.parent / f".restorepkg-{user}"
        shutil.rmtree(staging, ignore_errors=True)
        members = [m for m in tar.getmembers() if m.name.startswith(f"{top}/homedir")]
        tar.extractall(staging, members=members, filter="tar")
        shutil.rmtree(home, ignore_errors=True)
        (staging / top / "homedir").rename(home)
        shutil.rmtree(staging)
    info = pwd.getpwnam(user)
    for root, dirs, names in os.walk(home):
        for name in [*dirs, *names]:
            os.lchown(os.path.join(root, name), info.pw_uid, info.pw_gid)
    os.chown(home, info.pw_uid, info.pw_gid)
    data.update(suspended=False, reason="")
    save(user, data)
    print(f"Account Restore Complete: {user}")
    return 0


def main() -> int:
    name = Path(sys.argv[0]).name
    STATE.mkdir(exist_ok=True)
    with open(STATE / "calls.log", "a") as log:
        log.write(json.dumps([name, *sys.argv[1:]]) + "\n")
    handlers = {"whmapi1": whmapi1, "pkgacct": pkgacct, "restorepkg": restorepkg}
    if name not in handlers:
        print(f"{name}: not a command this stand-in knows", file=sys.stderr)
        return 127
    return handlers[name](sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
