#!/usr/bin/env bash
# bench/quiet.sh COMMAND...: run a benchmark with priority over everything else on the machine.
# COMMAND runs in its own scheduler autogroup (setsid) and every other autogroup is set to nice 19
# while it runs, restored afterwards: on a machine shared with other work the benchmark gets the
# cores, and the other work is slowed, not stopped. Needs root and autogroups
# (/proc/sys/kernel/sched_autogroup_enabled = 1). It does not make a busy machine quiet: the
# throttled work still shares caches and a core's hyperthread, so CPU times read higher than on an
# idle machine; compare only rows of the same run.
set -u
declare -A gnice
throttle() {
  local mine
  mine=$(awk '{print $1}' /proc/$1/autogroup 2>/dev/null)
  for p in /proc/[0-9]*; do
    g=$(awk '{print $1" "$3}' "$p/autogroup" 2>/dev/null) || continue
    name=${g% *}; n=${g#* }
    [[ -z $name || $name == "$mine" ]] && continue
    [[ -z ${gnice[$name]:-} ]] && gnice[$name]=$n
    [[ $n != 19 ]] && echo 19 > "$p/autogroup" 2>/dev/null
  done
}
restore() {
  for p in /proc/[0-9]*; do
    g=$(awk '{print $1}' "$p/autogroup" 2>/dev/null) || continue
    [[ -z $g ]] && continue
    echo "${gnice[$g]:-0}" 2>/dev/null > "$p/autogroup" || true
  done
}
trap 'kill -- -$child 2>/dev/null; restore; exit 143' TERM INT
setsid "$@" &
child=$!
sleep 0.2
while kill -0 $child 2>/dev/null; do throttle $child; sleep 1; done
wait $child; rc=$?
restore
exit $rc
