"""The wrapper every command of the ssh and local transports runs in: the script dies, with
everything it started, when the process that started it is gone or it gets SIGTERM."""

from __future__ import annotations

# Runs the script ($2) in a subshell with a process group of its own (job control on
# for that one fork: cheaper than starting another bash) beside a watchdog that kills
# everything the script started once the process $1 names is gone: over SSH the sshd
# process serving this session, locally the daemon, looked for five times a second (a
# session that ended under a script has it killed within 0.2 s; with a look once a
# second, a script already started when its sshd was slow to exit on a busy host could
# finish a step first). Without a pty, sshd sends no SIGHUP
# when the client dies, and nothing tells a local child its daemon died: the command
# would run on, orphaned, beside the one a restarted daemon starts (invariant 4). The
# script keeps the session's stdin, stdout and stderr; the watchdog holds none of them,
# so the channel ends when the script does. Names are prefixed so the script's own
# variables cannot meet them. The wrapper must lead a session of its own: sshd starts
# each command in one, the local transport starts its bash in one.
#
# The session's sshd ($1) is the login shell's parent, read by the login shell as it
# started: by the time this bash runs, the login shell has read ~/.bashrc, and a
# session that ended meanwhile left this bash a child of init, whose $PPID would look
# alive for ever. So the script starts only if that sshd is still there.
#
# "Everything the script started" is not its process group: `timeout` (which wraps every
# playbook `run` step) and a script's own job control put their children in process
# groups of their own, which a group kill leaves running. They never leave the session
# sshd made for this command (only setsid does), so the watchdog kills the session, and
# any descendant that left it while its parent lived. Each one is stopped when found, so
# that none forks unseen, and all are killed once a sweep of /proc finds no more. The
# wrapper does the same on SIGTERM, which the daemon sends (_TERMINATE) when it kills
# the command while the connection stays up (SSHProcess.kill), and the local transport
# when it kills a command (LocalProcess.kill).
WATCHED = r"""
lapse_session=$1
case $lapse_session in
  ''|*[!0-9]*) lapse_session=$PPID ;;  # a login shell without $PPID: the parent now
esac
lapse_gone() {
  if [ -d /proc/self ]; then [ ! -e "/proc/$lapse_session" ]
  else ! kill -0 "$lapse_session" 2>/dev/null; fi
}
if lapse_gone; then exit 255; fi
trap 'lapse_kill_all; exit 143' TERM  # the daemon's kill (_TERMINATE)
lapse_kill_all() {
  local sid line entry pid fields round found seen=" $BASHPID "
  read -r line < "/proc/$$/stat" 2>/dev/null || line=
  line=${line##*') '}  # what follows the command's name: state ppid pgrp session ...
  fields=($line)
  sid=${fields[3]:-}
  if [[ $sid != "$$" && $sid != "$PPID" ]]; then  # no /proc, or a session not ours
    [[ -n ${lapse_script:-} ]] && kill -KILL -- "-$lapse_script"
    return
  fi
  for round in 1 2 3 4 5 6 7 8 9 10; do
    found=
    for entry in /proc/[0-9]*/stat; do
      pid=${entry#/proc/}
      pid=${pid%/stat}
      [[ $seen == *" $pid "* ]] && continue
      read -r line < "$entry" 2>/dev/null || continue  # ended meanwhile
      line=${line##*') '}
      fields=($line)
      [[ ${fields[0]} == Z ]] && continue
      if [[ ${fields[3]} == "$sid" || $seen == *" ${fields[1]} "* ]]; then
        kill -STOP "$pid" 2>/dev/null
        seen+="$pid "
        found=1
      fi
    done
    [[ -n $found ]] || break
  done
  for pid in $seen; do [[ $pid == "$BASHPID" ]] || kill -KILL "$pid" 2>/dev/null; done
}
# This bash's own stderr goes nowhere: a script that ends before `set +m` would have it
# print a job notice ("[1]+ Exit 3 ...") into the command's stderr. The script gets the
# session's stderr back (fd 3, then closed).
exec 3>&2 2>/dev/null
set -m
(set +m -o pipefail; exec 2>&3 3>&-; eval "$2") <&0 &
lapse_script=$!
set +m
exec 3>&-
{
  # The pause between looks is a read that times out on a pipe this subshell holds both
  # ends of (nothing ever arrives): a builtin, so looking five times a second forks
  # nothing. Where that pipe cannot be made (no /dev/fd), `sleep 1` as before.
  if exec {lapse_tick}<> <(:); then lapse_pause() { read -r -t 0.2 -u "$lapse_tick"; }
  else lapse_pause() { sleep 1; }; fi
  while kill -0 "$lapse_script" 2>/dev/null; do
    if lapse_gone; then lapse_kill_all; exit; fi
    lapse_pause
  done
} </dev/null >/dev/null 2>&1 &
lapse_watchdog=$!
wait "$lapse_script"
lapse_status=$?
kill "$lapse_watchdog" 2>/dev/null
exit "$lapse_status"
"""
