#!/usr/bin/env bash
# One quiet step of the set-up or the Caffe build: say what it does on one line (with the time
# to expect), keep its whole output in a log file, and show the tail of that output only when
# the step fails, keeping its exit status.  A fresh `make df1seg` would otherwise bury its
# answer under about 1,400 lines of pip warnings, apt progress and compiler lines.
#
#   bash mk/logged.sh [--new] LOG "what it does (how long)" COMMAND [ARG...]
#   source mk/logged.sh; logged_step [--new] LOG "what it does (how long)" COMMAND [ARG...]
#
# COMMAND is a program, not a shell function (it runs with errexit off, so that its failure
# can be reported: a function of a `set -e` script would then run on past its own errors).
# --new starts LOG afresh (the first step of a group); other steps append to it.
# DFSEG_VERBOSE=1 also shows the whole output as it comes; DFSEG_LOG_TAIL (default 40) is how
# many lines of a failed step's output are shown.

logged_step() {
  local new=0 log what start t0 status errexit=0
  if [ "${1:-}" = --new ]; then new=1; shift; fi
  log=$1 what=$2
  shift 2
  mkdir -p "$(dirname "$log")" || return
  if [ "$new" = 1 ]; then : > "$log" || return; fi
  start=$(stat -c %s "$log" 2>/dev/null || echo 0)
  { echo "=== $(date '+%F %T') $what"; echo "\$ $*"; } >> "$log"
  t0=$SECONDS
  case $- in *e*) errexit=1; set +e ;; esac   # a caller's `set -e` would exit before the report
  if [ "${DFSEG_VERBOSE:-0}" = 1 ]; then
    echo "$what (log: $log)"
    "$@" 2>&1 < /dev/null | tee -a "$log"
    status=${PIPESTATUS[0]}
  else
    printf '%s ... ' "$what"
    "$@" >> "$log" 2>&1 < /dev/null
    status=$?
  fi
  if [ "$errexit" = 1 ]; then set -e; fi
  if [ "$status" -ne 0 ]; then
    echo "failed (exit $status, $((SECONDS - t0)) s)"
    echo "---- the last ${DFSEG_LOG_TAIL:-40} lines of its output ($log):" >&2
    tail -c +"$((start + 1))" "$log" | tail -n "${DFSEG_LOG_TAIL:-40}" >&2
    echo "---- full output: $log" >&2
    return "$status"
  fi
  [ "${DFSEG_VERBOSE:-0}" = 1 ] || echo "done ($((SECONDS - t0)) s)"
  return 0
}

# run as a script (not sourced): one step
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -u
  [ $# -ge 3 ] || { echo "usage: $0 [--new] LOG WHAT COMMAND [ARG...]" >&2; exit 2; }
  logged_step "$@"
  exit $?
fi
