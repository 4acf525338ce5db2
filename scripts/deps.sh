#!/usr/bin/env bash
# deps.sh installs the system tools that tandem's tests and demo need, and only
# the ones that are missing:
#
#   postgresql-15  PostgreSQL 15 server (internal/testenv) and pg_recvlogical
#   mariadb-server MariaDB 10.11 server (internal/testenv): mariadbd, mariadb-install-db
#   mariadb-client the mariadb and mariadb-binlog tools
#   prometheus     for promtool (metric and rule checks)
#   kcat           Kafka interop checks against kfake
#
# `deps.sh image` installs instead what `make image` (scripts/image.sh) needs:
#
#   buildah        builds and runs the release image without a Docker engine
#   ca-certificates, tzdata  /etc/ssl/certs/ca-certificates.crt and
#                  /usr/share/zoneinfo, copied into the image
#
# It is idempotent and takes about a second when everything is present. It runs
# `apt-get update` only when something has to be installed. While apt runs, a
# policy-rc.d keeps Debian's postinst scripts from starting services (the
# PostgreSQL system cluster, the system MariaDB, Prometheus); any policy-rc.d
# already there is put back afterwards. A default cluster or MariaDB data folder
# that apt may create is left alone: tandem's throwaway servers never use ports
# 5432 or 3306, and run mariadbd with --no-defaults, so /etc/mysql is not read.
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
POLICY=/usr/sbin/policy-rc.d
APT_INSTALL=(apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends)

# provides PKG prints what PKG must leave behind: a path, or a command on PATH.
provides() {
	case $1 in
	postgresql-15) echo "$PG_BIN/postgres" ;;
	postgresql-client-15) echo "$PG_BIN/pg_recvlogical" ;;
	mariadb-server) echo /usr/sbin/mariadbd ;;
	mariadb-client) echo mariadb-binlog ;;
	prometheus) echo promtool ;;
	kcat) echo kcat ;;
	buildah) echo buildah ;;
	ca-certificates) echo /etc/ssl/certs/ca-certificates.crt ;;
	tzdata) echo /usr/share/zoneinfo/UTC ;;
	esac
}
# present PKG succeeds when what PKG provides is there.
present() {
	local p
	p=$(provides "$1")
	if [[ $p == /* ]]; then
		[[ -e $p ]]
	else
		command -v "$p" >/dev/null 2>&1
	fi
}

wanted=(postgresql-15 postgresql-client-15 mariadb-server mariadb-client prometheus kcat)
case ${1:-} in
'') ;;
image) wanted=(buildah ca-certificates tzdata) ;;
*)
	echo "usage: deps.sh [image]" >&2
	exit 2
	;;
esac

missing=()
for pkg in "${wanted[@]}"; do
	present "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
	echo "deps: all present (${wanted[*]})"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing ${missing[*]}; as root, run:" >&2
	echo "  apt-get -o DPkg::Lock::Timeout=300 update && DEBIAN_FRONTEND=noninteractive ${APT_INSTALL[*]} ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Keep postinst scripts from starting services while apt runs; restore the
# previous policy (if any) on every exit path.
policy_backup=""
if [[ -e $POLICY ]]; then
	policy_backup=$(mktemp)
	cp -p "$POLICY" "$policy_backup"
fi
log=$(mktemp)
restore_policy() {
	if [[ -n $policy_backup ]]; then
		cp -p "$policy_backup" "$POLICY"
		rm -f "$policy_backup"
	else
		rm -f "$POLICY"
	fi
	rm -f "$log"
}
trap restore_policy EXIT
printf '#!/bin/sh\n# written by tandem scripts/deps.sh while installing\nexit 101\n' >"$POLICY"
chmod 0755 "$POLICY"

echo "deps: installing ${missing[*]} (apt-get)"
if ! apt-get -o DPkg::Lock::Timeout=300 update >"$log" 2>&1 ||
	! "${APT_INSTALL[@]}" "${missing[@]}" >>"$log" 2>&1; then
	echo "deps: apt-get failed; last lines of its output:" >&2
	tail -n 40 "$log" >&2
	exit 1
fi

# Verify and report, one line per thing installed.
status=0
for pkg in "${missing[@]}"; do
	if present "$pkg"; then
		echo "deps: installed $pkg ($(provides "$pkg"))"
	else
		echo "deps: installed $pkg, but $(provides "$pkg") is still missing" >&2
		status=1
	fi
done
exit "$status"
