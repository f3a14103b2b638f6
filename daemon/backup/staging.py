"""The bash scripts of a staged restore: extract beside the target, list, swap, discard.

A restore never writes into the live tree. It creates a fresh staging directory
beside the target (a new, unpredictable name, mode 0700, owned by Lapse's user,
so nobody else can reach into it while tar fills it), extracts there, lists
what it extracted for the daemon to compare with the archive, and only then
swaps it in with two renames, keeping the previous tree until the swap
succeeded.

Every script reaches the target's parent from the allowed root one component at
a time, refusing a symlink at each step and checking `pwd -P` at the end, and
then works only with names relative to that directory: a component the client
swaps for a symlink afterwards no longer matters, because the shell's working
directory is the checked directory itself, not its path (invariant 5).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath
from shlex import quote

from daemon.backup.commands import decompress_command
from daemon.domain.errors import LapseError

# Between the fields of one entry of the host's listing, and at its end: no name holds it.
LISTING_DIGESTS_MARK = b"--lapse-digests--"
UID_MARK = b"lapse-uid"
# What the extract script prints first, with the name of the digest its listing carries.
DIGEST_MARK = b"lapse-digest"
SWAPPED = b"swapped"
# The line an armed swap script waits for before it does anything.
SWAP_ORDER = b"swap\n"
STAGING_PREFIX = ".lapse-restore-"
PREVIOUS_PREFIX = ".lapse-previous-"


class TargetError(LapseError, ValueError):
    """A restore target is not a clean absolute path strictly inside an allowed root."""


@dataclass(frozen=True)
class StagedTarget:
    """Where one object is restored: `root` (an allowed root), the components from it to
    the target's parent, the target's own name, and this restore's staging and
    previous-tree names beside it."""

    root: str
    parents: tuple[str, ...]
    name: str
    staging: str
    previous: str

    @property
    def path(self) -> str:
        """The target's full path."""
        return str(PurePosixPath(self.root, *self.parents, self.name))

    @property
    def staging_path(self) -> str:
        """The staging directory's full path."""
        return str(PurePosixPath(self.root, *self.parents, self.staging))


def staged_target(path: str, allowed_roots: list[str]) -> StagedTarget:
    """Return the staged target for `path`, with fresh random staging names.

    Raises TargetError when `path` is not absolute and clean (no '.', '..' or
    doubled '/'), or does not lie strictly below one of `allowed_roots`.
    """
    candidate = PurePosixPath(path)
    if not path.startswith("/") or str(candidate) != path.rstrip("/") or ".." in candidate.parts:
        raise TargetError(f"restore target {path!r} must be a clean absolute path")
    for root in sorted(allowed_roots, key=len, reverse=True):
        base = PurePosixPath(root)
        if candidate != base and candidate.is_relative_to(base):
            parts = candidate.relative_to(base).parts
            token = secrets.token_hex(8)
            return StagedTarget(
                str(base), parts[:-1], parts[-1], STAGING_PREFIX + token, PREVIOUS_PREFIX + token
            )
    raise TargetError(
        f"restore target {path} lies outside the host's allowed_roots "
        f"({', '.join(allowed_roots) or 'none configured'})"
    )


def _walk(target: StagedTarget, create: bool) -> str:
    """A script fragment entering the target's parent without following a symlink."""
    missing = (
        'mkdir -m 0755 -- "$part" || fail "cannot create $(pwd -P)/$part"'
        if create
        else 'fail "$(pwd -P)/$part does not exist"'
    )
    parts = " ".join(quote(part) for part in target.parents)
    relative = quote("/".join(target.parents))
    return f"""
fail() {{ printf 'lapse: %s\\n' "$1" >&2; exit 3; }}
cd -P -- {quote(target.root)} || fail {quote(f"allowed root {target.root} is not a directory")}
real=$(pwd -P)
for part in {parts}; do
  if [ -L "$part" ]; then fail "$(pwd -P)/$part is a symlink; refusing to follow it"; fi
  if [ ! -e "$part" ]; then {missing}; fi
  if [ ! -d "$part" ]; then fail "$(pwd -P)/$part is not a directory"; fi
  cd -- "$part" || fail "cannot enter $(pwd -P)/$part"
done
relative={relative}
expected="$real${{relative:+/$relative}}"
if [ "$(pwd -P)" != "$expected" ]; then fail "$expected changed while it was checked"; fi
name={quote(target.name)}
staging={quote(target.staging)}
"""


def extract_script(target: StagedTarget, compression: str, replace: bool = True) -> str:
    """Return a script extracting a tar, compressed with `compression` ('none' for a plain
    tar), from stdin into a new staging directory beside `target`, then printing the
    staging tree's listing.

    Once the target is checked and before it reads stdin, the script prints
    DIGEST_MARK, a space, the name of the digest its listing will carry and a NUL:
    'blake3' where the host has b3sum, 'sha256' otherwise. The listing follows the
    extraction, NUL-separated: UID_MARK and the uid the script runs as; then
    per entry its type, octal mode, uid, gid, mtime, size, path and link target
    (GNU find's %y %m %U %G %T@ %s %p %l); then LISTING_DIGESTS_MARK and
    `sha256sum -z`-shaped lines (the hex digest, two spaces, the path) of every
    regular file, in no set order (one digest process per core, at most 4). BLAKE3
    comes from b3sum, which prints no names (its digests are paired with the names
    by their order); SHA-256 from `openssl dgst` where the host has it, `sha256sum`
    otherwise and for paths holding a newline or a backslash, which openssl's output
    would escape. The script refuses (exit 3) a
    target that is a symlink or not a directory, and without `replace` one that
    is a directory with anything in it; on a failed extraction it
    removes the staging directory and exits 4. GNU tar's own guards (no
    absolute names, no '..', symlinks created last) stay on as a second line.
    """
    refuse_full = (
        ""
        if replace
        else """if [ -d "$name" ] && [ -n "$(ls -A -- "$name")" ]; then
  fail "restore target $expected/$name exists and is not empty; pass --force to replace it"
fi
"""
    )
    return (
        _walk(target, create=True)
        + f"""
if [ -L "$name" ]; then fail "restore target $expected/$name is a symlink; refusing it"; fi
if [ -e "$name" ] && [ ! -d "$name" ]; then
  fail "restore target $expected/$name is not a directory"
fi
{refuse_full}
mkdir -m 0700 -- "$staging" || fail "cannot create the staging directory $expected/$staging"
cd -- "$staging" || fail "cannot enter $expected/$staging"
if [ "$(pwd -P)" != "$expected/$staging" ] || [ "$(stat -c %u:%a .)" != "$(id -u):700" ]; then
  fail "the staging directory $expected/$staging changed under the restore"
fi
# The digest is chosen once, here, and announced before tar reads a byte: the daemon
# digests each member with it as the archive streams.
if command -v b3sum >/dev/null 2>&1; then digest=blake3; else digest=sha256; fi
printf '%s %s\\0' {DIGEST_MARK.decode()} "$digest"
# Directory modes and owners are applied at the end, so the staging tree stays closed
# (0700, Lapse's user) to everyone else while tar fills it. Records of 128 KiB instead of
# 10 KiB: a twelfth of the reads from the session's pipe (reading stdin, tar fills each
# record whole whatever the writer's pieces, and a short last one is fine).
if ! {{ {_decompress(compression)}tar --extract --file=- --blocking-factor=256 \\
    --preserve-permissions --numeric-owner --delay-directory-restore; }}; then
  cd .. && rm -rf -- "$staging"
  exit 4
fi
printf '%s %s\\0' {UID_MARK.decode()} "$(id -u)"
find . -printf '%y\\0%m\\0%U\\0%G\\0%T@\\0%s\\0%p\\0%l\\0'
printf '%s\\0' {LISTING_DIGESTS_MARK.decode()}
# The digests are the last thing the restore waits for: one process per core (at most 4),
# each digesting one list of files into a file of its own, so their lines cannot
# interleave. The largest files come first, dealt round-robin, so the lists hold about
# the same bytes. Every list is complete before its digest starts, and they all run at
# once: split's own --filter ends one filter's input only once the one before it ended,
# which ran them one after another. Their bash is started with --norc: in the
# background it runs at the top shell level, where a bash that sshd's session started
# reads ~/.bashrc (0.1 s each with a `pyenv init` hook, and whatever it prints would
# land in the digests). Each digest process reads its list on stdin and
# from the file $LIST, and writes sha256sum -z lines (the hex digest, two spaces, the
# path, a NUL) to $FILE. b3sum takes about a third of the CPU time of `openssl dgst
# -sha256`, which uses the CPU's SHA instructions (coreutils' sha256sum does not, and
# takes about six times as long). b3sum prints a name escaped, or altered when it is
# not UTF-8, so it prints none (--no-names): one digest a line, in its list's order,
# and each is put before its name as the list has it (as many digests as names, or the
# status is non-zero). openssl's lines become sha256sum -z lines; a path with a newline
# or a backslash, which openssl would print escaped, goes to sha256sum, as everything
# does on a host without openssl. A digest a tool failed to print makes the script's
# status non-zero, which fails the restore.
digests=$(mktemp -d) || fail "cannot create a temporary directory for the digests"
parts=$(nproc 2>/dev/null || echo 1)
if [ "$parts" -gt 4 ]; then parts=4; fi
if [ "$digest" = blake3 ]; then
  quick='xargs -0 -r b3sum --no-names -- <"$LIST" | tr "\\n" "\\0" >"$LIST.sums" &&
    sed -z "s/^/  /" -- "$LIST" | paste -z -d "\\0" -- "$LIST.sums" - >"$FILE" &&
    [ "$(tr -cd "\\0" <"$LIST.sums" | wc -c)" = "$(tr -cd "\\0" <"$LIST" | wc -c)" ]'
  plain=$quick
else
  plain='xargs -0 -r sha256sum -z -- >"$FILE"'
  quick=$plain
  if command -v openssl >/dev/null 2>&1; then
    quick='xargs -0 -r openssl dgst -sha256 -r -- | sed "s/ [*]/  /" | tr "\\n" "\\0" >"$FILE"'
  fi
fi
find . -type f ! -path $'*\\n*' ! -path '*\\\\*' -printf '%s\\t%p\\0' | sort -z -n -r |
  cut -z -f2- | split --number="r/$parts" --separator='\\0' - "$digests/list."
status=$?
shopt -s nullglob
running=()
for list in "$digests"/list.*; do
  LIST="$list" FILE="$list.sha" bash --norc -o pipefail -c "$quick" <"$list" &
  running+=("$!")
done
escaped="$digests/escaped"
find . -type f \\( -path $'*\\n*' -o -path '*\\\\*' \\) -print0 >"$escaped" || status=$?
LIST=$escaped FILE="$escaped.sha" bash --norc -o pipefail -c "$plain" <"$escaped" || status=$?
for job in "${{running[@]}}"; do wait "$job" || status=$?; done
set -- "$digests"/*.sha
if [ $# -gt 0 ]; then cat -- "$@"; fi
rm -rf -- "$digests"
exit "$status"
"""
    )


def _decompress(compression: str) -> str:
    """The pipeline's head decoding stdin for tar: nothing for a plain tar ('none')."""
    return "" if compression == "none" else f"{decompress_command(compression)} | "


def swap_script(target: StagedTarget, armed: bool = False) -> str:
    """Return a script putting the staging directory in place of `target`.

    The live tree is renamed aside and the staging directory renamed in; if the
    second rename fails the first is undone. Hang-ups, interrupts and a closed
    output are ignored from the start, so a lost link or Ctrl-C cannot stop the
    script between the two renames. Prints SWAPPED once the new tree is in
    place, then starts the removal of the previous tree in a session of its own
    and returns without waiting for it (a removal that cannot start is a warning).

    `armed`: the script first waits for the line SWAP_ORDER on its input (started
    ahead, its connection is made while the archive streams); any
    other line, or the input's end (the daemon gave up, or its link went), ends
    it with status 0 before it looked at anything, nothing printed.
    """
    wait = 'IFS= read -r order || exit 0\n[ "$order" = swap ] || exit 0\n' if armed else ""
    return (
        f"trap '' HUP INT TERM PIPE\n{wait}exec </dev/null\n"
        + _walk(target, create=False)
        + f"""
previous={quote(target.previous)}
if [ -L "$staging" ] || [ ! -d "$staging" ]; then
  fail "the staging directory $expected/$staging is gone or replaced; nothing swapped"
fi
if [ -L "$name" ]; then fail "restore target $expected/$name is a symlink; nothing swapped"; fi
if [ -e "$name" ]; then
  mv -T -- "$name" "$previous" || fail "cannot move $expected/$name aside; nothing swapped"
  if ! mv -T -- "$staging" "$name"; then
    mv -T -- "$previous" "$name"
    fail "cannot move the restored tree into $expected/$name; the previous tree is back"
  fi
  printf '%s\\n' {SWAPPED.decode()}
  # Removed in a session of its own, after the script returns: the restored site is
  # live already, and nobody should wait for the old tree's unlinks.
  setsid -f rm -rf -- "$previous" </dev/null >/dev/null 2>&1 ||
    echo "lapse-warning: $expected/$previous could not be removed" >&2
else
  mv -T -- "$staging" "$name" || fail "cannot move the restored tree into $expected/$name"
  printf '%s\\n' {SWAPPED.decode()}
fi
"""
    )


def discard_script(target: StagedTarget) -> str:
    """Return a script removing this restore's staging directory, if it is still there
    as a real directory (a symlink of that name is left alone)."""
    return (
        _walk(target, create=False)
        + """
if [ -d "$staging" ] && [ ! -L "$staging" ]; then rm -rf -- "$staging"; fi
"""
    )
