#!/bin/bash
# renderfarm-healthcheck: the image's HEALTHCHECK. One image runs every role,
# so the check finds out which role this container runs, and where it
# listens, from PID 1's command line (the ENTRYPOINT is renderfarm itself)
# and the container's environment, then asks that role's /healthz:
#   web     --listen (RENDERFARM_LISTEN, default :8080)
#   worker  --metrics-listen (RENDERFARM_METRICS_LISTEN, default :9180)
#   other   (tune, render, replay: no server) healthy while running
# It is bash and its /dev/tcp, because the image has no curl or wget and
# should not grow a tool for this. Arguments, if given, replace PID 1's
# command line (for tests: renderfarm-healthcheck web --listen :8081).
set -uo pipefail

if (($# == 0)); then
  mapfile -d '' -t args </proc/1/cmdline || exit 1
else
  args=("$@")
fi

role=
addr=
want=
for ((i = 0; i < ${#args[@]}; i++)); do
  a=${args[i]}
  if [[ -z $role ]]; then
    # The first word that is not the binary or a global flag is the role.
    [[ $a == -* || $a == */renderfarm || $a == renderfarm ]] && continue
    role=$a
    case $role in
    web) want=listen addr=${RENDERFARM_LISTEN:-:8080} ;;
    worker) want=metrics-listen addr=${RENDERFARM_METRICS_LISTEN:-:9180} ;;
    *) exit 0 ;;
    esac
    continue
  fi
  # urfave/cli takes -flag, --flag, with the value joined by = or next.
  case $a in
  --"$want" | -"$want") addr=${args[i + 1]:-} ;;
  --"$want"=* | -"$want"=*) addr=${a#*=} ;;
  esac
done
[[ -n $role ]] || exit 0

# host:port, [v6]:port or :port; a wildcard host is reached on loopback.
port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
case $host in "" | 0.0.0.0 | ::) host=127.0.0.1 ;; esac
[[ $port =~ ^[0-9]+$ ]] || {
  echo "healthcheck: cannot read a port from $role's address '$addr'" >&2
  exit 1
}

if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
  echo "healthcheck: $role: nothing listens on $host:$port" >&2
  exit 1
fi
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
status=
read -r -t 4 status <&3 || true
exec 3<&-
if [[ $status =~ ^HTTP/1\.[01]\ 200 ]]; then
  exit 0
fi
echo "healthcheck: $role: GET http://$host:$port/healthz: ${status:-no answer}" >&2
exit 1
