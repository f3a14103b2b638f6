"""The tree rule: host work stays inside the account's own tree (invariant 5).

A client controls everything inside its home, so a docroot from billing data is
hostile input even when it lies inside an allowed root: the client who owns
`/home/alice` can replace `/home/alice/public_html` with a symlink to another
client's site. Before Lapse backs up, suspends, restores or deletes, it checks on
the host, without following links, that

- the docroot is a plain absolute path inside one of the host's `allowed_roots`;
- no component below that root is a symbolic link, and each is a directory;
- the docroot itself is a real directory at exactly that path (its physical path,
  read after entering it, is the allowed root's physical path joined with it);
- where the service names a system user, that user owns the docroot (a user not on
  the host owns nothing: then only root or a uid of no user may own it).

The check is a shell snippet (`enter_script`) that ends inside the checked
docroot, so a command that needs the docroot (the backup's `tar`) runs the check
first and then works on the directory it checked, in the same process: a link
swapped in after the check is never followed. A failed check exits with
`TREE_STATUS` and one line naming the path and what was wrong.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from shlex import quote

from daemon.backup.errors import BackupError
from daemon.config.schema import HostConfig
from daemon.transport import CommandError, Transport

# The exit status of a failed tree check, and the prefix of its one-line reason.
TREE_STATUS = 73
_PREFIX = "lapse-tree: "
# Printed by `check_script` when an allowed-missing docroot does not exist.
ABSENT_MARK = "lapse-tree-absent"


class TreeError(BackupError):
    """A docroot breaks the tree rule; the message names the path and what was wrong."""


def allowed_root(host: HostConfig, docroot: str) -> PurePosixPath:
    """Return the allowed root `docroot` lies strictly below (the deepest one).

    Raises TreeError when `docroot` is not a plain absolute path (relative, with a
    '.' or '..' component, a doubled or trailing '/', a line break) or lies
    outside every allowed root.
    """
    path = PurePosixPath(docroot)
    plain = str(path) == docroot and ".." not in path.parts and "\n" not in docroot
    if not path.is_absolute() or not plain:
        raise TreeError(f"docroot {docroot!r} is not a plain absolute path")
    roots = [PurePosixPath(root) for root in host.allowed_roots]
    below = [root for root in roots if path.is_relative_to(root) and path != root]
    if not below:
        raise TreeError(
            f"docroot {docroot} lies outside the host's allowed_roots "
            f"({', '.join(str(root) for root in roots)})"
        )
    return max(below, key=lambda root: len(root.parts))


def enter_script(
    host: HostConfig, docroot: str, system_user: str | None, *, allow_missing: bool = False
) -> str:
    """Return a bash snippet that checks `docroot` by the tree rule and `cd`s into it.

    With `allow_missing`, a docroot that does not exist (with every existing
    component passing the check) prints ABSENT_MARK and ends the script with
    status 0. Raises TreeError for a docroot that fails the checks made here
    (see `allowed_root`); the snippet fails with TREE_STATUS on the host.
    """
    root = allowed_root(host, docroot)
    below = PurePosixPath(docroot).relative_to(root)
    components = [str(root.joinpath(*below.parts[: n + 1])) for n in range(len(below.parts))]
    missing = (
        f'printf "%s\\n" {ABSENT_MARK}; exit 0'
        if allow_missing
        else 'tree_fail "$part does not exist"'
    )
    owner = ""
    if system_user:
        # A user not (or no longer) on the host owns nothing: then the docroot may belong
        # only to root or to a uid no user has (what a removed user leaves), never to
        # another account's user.
        owner = f"""
user={quote(system_user)}
owner=$(stat -c %u .) || tree_fail "cannot read the owner of $docroot"
if uid=$(id -u -- "$user" 2>/dev/null); then
  [ "$owner" = "$uid" ] || tree_fail "$docroot is owned by uid $owner, not by $user (uid $uid)"
elif [ "$owner" != 0 ] && other=$(getent passwd "$owner"); then
  tree_fail "$docroot is owned by ${{other%%:*}} (uid $owner), and $user is no user on the host"
fi
"""
    return f"""
tree_fail() {{ printf '{_PREFIX}%s\\n' "$1" >&2; exit {TREE_STATUS}; }}
root={quote(str(root))}
docroot={quote(docroot)}
[ -d "$root" ] || tree_fail "allowed root $root is not a directory"
physical_root=$(cd -P -- "$root" && pwd -P) || tree_fail "cannot enter allowed root $root"
for part in {" ".join(quote(part) for part in components)}; do
  if [ -L "$part" ]; then tree_fail "$part is a symbolic link"; fi
  if [ ! -e "$part" ]; then {missing}; fi
  if [ ! -d "$part" ]; then tree_fail "$part is not a directory"; fi
done
cd -P -- "$docroot" || tree_fail "cannot enter $docroot"
# What was entered, read back from the directory itself: a link swapped in between the
# loop and the cd shows here as a different physical path.
here=$(pwd -P)
expected="${{physical_root%/}}/"{quote(str(below))}
[ "$here" = "$expected" ] || tree_fail "$docroot leads to $here, not to $expected"
{owner}"""


def check_script(
    host: HostConfig, docroot: str, system_user: str | None, *, allow_missing: bool = False
) -> str:
    """Return a whole script running the tree check of `docroot` and nothing else."""
    return enter_script(host, docroot, system_user, allow_missing=allow_missing) + "true\n"


def check_account_tree(
    transport: Transport,
    host: HostConfig,
    docroot: str,
    system_user: str | None,
    *,
    allow_missing: bool = False,
) -> bool:
    """Check `docroot` on the host by the tree rule (see the module docstring).

    Returns True when the docroot exists and passed, False when it does not exist
    and `allow_missing`. Raises TreeError naming the path and what was wrong,
    CommandError or TransportError when the check itself cannot run.
    """
    script = check_script(host, docroot, system_user, allow_missing=allow_missing)
    try:
        result = transport.run(script, f"tree check of {docroot}")
    except CommandError as error:
        raise tree_error(error, transport.name, docroot) or error from error
    return ABSENT_MARK not in result.stdout.decode(errors="replace")


def tree_error(error: CommandError, host_name: str, docroot: str) -> TreeError | None:
    """Return the TreeError a command that ran `enter_script` failed with, None when it
    failed for another reason."""
    if error.status != TREE_STATUS:
        return None
    reasons = [
        line.removeprefix(_PREFIX) for line in error.stderr.splitlines() if line.startswith(_PREFIX)
    ]
    if not reasons:
        return None
    return TreeError(
        f"refused: docroot {docroot} on {host_name} breaks the tree rule: {reasons[-1]}"
    )
