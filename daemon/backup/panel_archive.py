"""Panel archives: the file a control panel's own backup command writes on the host
(pkgacct's cpmove-USER.tar.gz, v-backup-user's USER.DATE.tar, pleskbackup's export),
made an object of Lapse's backup so it leaves the host and is proven like the rest.

Taking one is two host commands. The first makes a fresh directory that only the
login user (root) can enter, under a parent that must be a real directory (no
symlink), runs the panel's command with `LAPSE_ARCHIVE_DIR` naming it, and checks
that the command left exactly the named file there: a regular file, not a symlink,
with a single link, owned by the login user. Nothing else can write into that
directory, so the file is the one the command just wrote, and a symlink planted
anywhere the client can reach is never followed; a symlink inside is refused. It
prints the directory and the file's size. The second re-checks the file the same way
and streams it; the directory is removed once the object is stored (or the backup
failed), so the archive does not stay on the host.

Restoring one streams the object back into a fresh root-only directory, checks its
size and SHA-256 on the host against the manifest, runs the panel's restore command
with `LAPSE_ARCHIVE` naming the file, and removes the directory whatever happened.

Every value is shell-quoted here; the commands themselves come rendered from the
playbook (daemon.playbooks.templating), with every interpolated value quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from shlex import quote

from daemon.backup.errors import BackupError

# Where the fresh directories are made unless a playbook says otherwise.
DEFAULT_WORK_DIR = "/var/lib/lapse/panel-archives"
# What the object holds, as the playbook says, and how verification lists it.
FORMATS = ("tar", "tar.gz", "zip")
# The compression a format's object is read back with (daemon.backup.archive.decompressed).
COMPRESSION = {"tar": "none", "tar.gz": "gzip", "zip": "none"}
# Printed before the fresh directory and the file's size, after the panel's own output.
MADE_MARK = "--lapse-panel-archive--"
# The exit status of a refused archive (symlink, missing, not the command's), and the
# prefix of its one-line reason.
REFUSED_STATUS = 74
_PREFIX = "lapse-archive: "
_PLAIN_NAME = re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@_+.=-]{0,200}")


class PanelArchiveError(BackupError):
    """A panel archive was refused (a symlink, a missing file, a bad name or directory)
    or its command failed; the message says which and why."""


@dataclass(frozen=True)
class PanelArchive:
    """One panel archive to take on `host`: `command` (bash, values quoted) writes the
    file `file` into the directory `$LAPSE_ARCHIVE_DIR`; `format` is one of FORMATS;
    `work_dir` is where the fresh directory is made; `label` names it in logs."""

    host: str
    command: str
    file: str
    format: str
    work_dir: str
    label: str

    def __post_init__(self) -> None:
        check_file_name(self.file)
        check_work_dir(self.work_dir)
        if self.format not in FORMATS:
            raise PanelArchiveError(
                f"panel archive format {self.format!r} is not one of {', '.join(FORMATS)}"
            )


def check_file_name(name: str) -> str:
    """Return `name` if it is a plain file name: letters, digits and '@_+.=-', not
    starting with '.' or '-' (so no '/', '.', '..' or control character). Raises
    PanelArchiveError."""
    if not _PLAIN_NAME.fullmatch(name):
        raise PanelArchiveError(f"panel archive file name {name!r} is not a plain file name")
    return name


def check_work_dir(path: str) -> str:
    """Return `path` if it is a plain absolute directory path other than '/'.
    Raises PanelArchiveError."""
    candidate = PurePosixPath(path)
    plain = str(candidate) == path and ".." not in candidate.parts and "\n" not in path
    if not candidate.is_absolute() or not plain or candidate == PurePosixPath("/"):
        raise PanelArchiveError(f"panel archive work_dir {path!r} is not a plain absolute path")
    return path


def object_name(index: int, archive_format: str) -> str:
    """Return the name of the backup object holding the `index`-th panel archive."""
    return f"panel-{index}.{archive_format}"


_FAIL = f"fail() {{ printf '{_PREFIX}%s\\n' \"$1\" >&2; exit {REFUSED_STATUS}; }}\n"


def _fresh_dir(work_dir: str) -> str:
    """A snippet making "$dir": fresh, owned by the login user, mode 0700, no symlink."""
    return f"""umask 077
parent={quote(work_dir)}
[ -e "$parent" ] || [ -L "$parent" ] || mkdir -p -m 0700 -- "$parent" || fail "cannot make $parent"
if [ -L "$parent" ] || [ ! -d "$parent" ]; then fail "$parent is not a real directory"; fi
writable=$(find "$parent" -maxdepth 0 -perm /022)
if [ "$(stat -c %u -- "$parent")" != "$(id -u)" ] || [ -n "$writable" ]; then
  fail "$parent is not a directory of $(id -un) that only it may write"
fi
dir=$(mktemp -d -- "$parent/lapse-archive.XXXXXXXXXX") || fail "cannot make a directory in $parent"
if [ -L "$dir" ] || [ "$(stat -c '%u %a' -- "$dir")" != "$(id -u) 700" ]; then
  fail "$dir is not a fresh directory only $(id -un) can enter"
fi
"""


def _check_file() -> str:
    """A snippet refusing "$file" unless it is the regular file a command wrote into "$dir"."""
    return """if [ -L "$file" ]; then fail "$file is a symbolic link, never followed"; fi
if [ ! -f "$file" ]; then fail "$file was not written (no regular file there)"; fi
if [ "$(stat -c '%u %h' -- "$file")" != "$(id -u) 1" ]; then
  fail "$file is not a file of $(id -un) with a single link"
fi
"""


def make_script(archive: PanelArchive) -> str:
    """Return the script that runs the panel's command into a fresh directory and prints
    MADE_MARK, the directory and the file's size, one per line (the command's own
    output goes to stderr). It fails with REFUSED_STATUS and a `lapse-archive:` line
    when the file is missing or not the command's, and removes the directory then."""
    return (
        _FAIL
        + _fresh_dir(archive.work_dir)
        + f"""trap 'rm -rf -- "$dir"' EXIT
export LAPSE_ARCHIVE_DIR="$dir"
( {archive.command}
) >&2 || {{
  status=$?; echo "{_PREFIX}the panel's command failed (exit $status)" >&2; exit "$status"
}}
file="$dir"/{quote(archive.file)}
{_check_file()}trap - EXIT
printf '%s\\n' {MADE_MARK} "$dir" "$(stat -c %s -- "$file")"
"""
    )


def stream_script(directory: str, file: str, size: int) -> str:
    """Return the script that re-checks the file made in `directory` (still `size` bytes)
    and streams it."""
    return (
        _FAIL
        + f"""dir={quote(directory)}
file="$dir"/{quote(check_file_name(file))}
if [ -L "$dir" ] || [ "$(stat -c '%u %a' -- "$dir")" != "$(id -u) 700" ]; then
  fail "$dir is no longer a directory only $(id -un) can enter"
fi
{_check_file()}now=$(stat -c %s -- "$file")
[ "$now" = {int(size)} ] || fail "$file changed since it was made ({size} bytes, now $now)"
exec cat -- "$file"
"""
    )


def discard_script(directory: str) -> str:
    """Return the script removing a fresh directory made by `make_script` (and only one:
    its name must be lapse-archive.*)."""
    if not PurePosixPath(directory).name.startswith("lapse-archive."):
        raise PanelArchiveError(f"{directory!r} is not a directory Lapse made for an archive")
    return f"rm -rf -- {quote(check_work_dir(directory))}\n"


def parse_made(output: bytes) -> tuple[str, int]:
    """Read what `make_script` printed after MADE_MARK: (directory, size).
    Raises PanelArchiveError when it is not there."""
    text = output.decode("utf-8", errors="surrogateescape")
    _, mark, rest = text.rpartition(MADE_MARK + "\n")
    lines = rest.splitlines()
    if not mark or len(lines) != 2 or not lines[1].isdigit():
        raise PanelArchiveError(f"unexpected answer making the panel archive: {output[-200:]!r}")
    discard_script(lines[0])  # checks the name
    return lines[0], int(lines[1])


def place_script(work_dir: str, file: str, size: int, sha256: str, command: str) -> str:
    """Return the script that writes stdin to `file` in a fresh root-only directory under
    `work_dir`, checks its size and SHA-256, runs `command` (bash, values quoted) with
    `LAPSE_ARCHIVE` naming the file and `LAPSE_ARCHIVE_DIR` the directory, and removes
    the directory whatever happened. Raises PanelArchiveError for a bad name or path."""
    check_file_name(file)
    check_work_dir(work_dir)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise PanelArchiveError(f"{sha256!r} is not a SHA-256")
    return (
        _FAIL
        + _fresh_dir(work_dir)
        + f"""trap 'rm -rf -- "$dir"' EXIT
file="$dir"/{quote(file)}
cat > "$file" || fail "cannot write $file"
got=$(stat -c %s -- "$file")
[ "$got" = {size} ] || fail "$file holds $got bytes, the backup's archive {size}"
digest=$(sha256sum -- "$file") || fail "cannot read $file back"
[ "${{digest%% *}}" = {sha256} ] || fail "$file differs from the backup's archive (SHA-256)"
export LAPSE_ARCHIVE="$file" LAPSE_ARCHIVE_DIR="$dir"
( {command}
)
"""
    )


def refusal(stderr: str) -> str | None:
    """Return the reason a script of this module refused, from its stderr, or None."""
    lines = stderr.splitlines()
    reasons = [line.removeprefix(_PREFIX) for line in lines if line.startswith(_PREFIX)]
    return reasons[-1] if reasons else None
