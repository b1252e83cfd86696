#!/usr/bin/env bash
# Build (or check) the Debian 13 (trixie) chroot the dev cloud runs in:
# OpenStack 2025.1 (nova 31, keystone 27, glance 30, placement 13,
# neutron 26) from the python3-* library packages, MariaDB, RabbitMQ and
# uwsgi, all inside DEVCLOUD_CHROOT (default /var/tmp/kerbside-devcloud-chroot).
#
#   chroot.sh build     debootstrap --variant=minbase trixie, then apt-get the packages
#   chroot.sh check     exit 0 when the chroot is complete, else say what is missing
#   chroot.sh purge     delete the chroot (the next build starts from nothing)
#
# Idempotent: each stage leaves a marker; a complete stage is skipped, an
# interrupted one is redone. The mirror is the host's own (its apt
# sources), or DEVCLOUD_MIRROR: no package registry is named here. apt and
# debootstrap run in the host's network namespace (they need the mirror);
# /proc, /dev and /sys are mounted for them inside `unshare -m`, so the
# mounts are private to that process and vanish with it. Nothing is
# written under the host's /etc. Slow stages print a progress line every
# DEVCLOUD_PROGRESS seconds (15) and are bounded by DEVCLOUD_BUILD_TIMEOUT
# seconds each (2400).
set -euo pipefail

CHROOT_DIR="${DEVCLOUD_CHROOT:-/var/tmp/kerbside-devcloud-chroot}"
ROOT="$CHROOT_DIR/root"
SUITE=trixie
PROGRESS="${DEVCLOUD_PROGRESS:-15}"
BUILD_TIMEOUT="${DEVCLOUD_BUILD_TIMEOUT:-2400}"

# The library packages (not the service packages, which pull in debconf
# prompts, libvirt and init scripts), the databases and the web server.
PACKAGES=(
	mariadb-server rabbitmq-server
	python3-keystone python3-glance python3-placement python3-nova python3-neutron
	python3-pymysql python3-openstacksdk
	uwsgi-core uwsgi-plugin-python3
	# The hypervisor of the per-server guests (kerbside_devcloud.virt):
	# QEMU with SPICE (a module of its own in trixie) and SeaBIOS.
	qemu-system-x86 qemu-system-modules-spice
)

log() { printf 'devcloud: %s\n' "$*" >&2; }
die() {
	printf 'devcloud: error: %s\n' "$*" >&2
	exit 1
}

# host_mirror: the URI of the host's Debian archive, read from its apt
# sources (deb822 .sources files first, then one-line .list files). A
# suite counts as Debian's when debootstrap has a script of that name and
# it has no -security/-updates suffix.
host_mirror() {
	local scripts=/usr/share/debootstrap/scripts f uri=""
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -z $uri ]] || break
		uri=$(awk -v scripts="$scripts" '
			function flush() {
				if (types ~ /(^|[ \t])deb([ \t]|$)/ && uri != "") {
					n = split(suites, s, /[ \t]+/)
					for (i = 1; i <= n; i++)
						if (s[i] != "" && s[i] !~ /-/ && system("test -e " scripts "/" s[i]) == 0) { print uri; found = 1; exit 0 }
				}
				types = ""; uri = ""; suites = ""
			}
			/^[ \t]*$/ { flush(); next }
			/^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
			/^URIs:/ { sub(/^URIs:[ \t]*/, ""); split($0, u, /[ \t]+/); uri = u[1] }
			/^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
			END { if (!found) flush() }' "$f")
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -z $uri && -f $f ]] || continue
		uri=$(sed -e 's/\[[^]]*\]//' "$f" | awk -v scripts="$scripts" '
			$1 == "deb" && $3 !~ /-/ && system("test -e " scripts "/" $3) == 0 { print $2; exit 0 }')
	done
	[[ -n $uri ]] && echo "$uri"
}

mirror() {
	local scripts=/usr/share/debootstrap/scripts f
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		awk -v scripts="$scripts" '
			function flush() {
				if (types ~ /(^|[ \t])deb([ \t]|$)/ && uri != "") {
					n = split(suites, s, /[ \t]+/)
					for (i = 1; i <= n; i++)
						if (s[i] != "" && s[i] !~ /-/ && system("test -e " scripts "/" s[i]) == 0) { print uri; exit 0 }
				}
				types = ""; uri = ""; suites = ""
			}
			/^[ \t]*$/ { flush(); next }
			/^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
			/^URIs:/ { sub(/^URIs:[ \t]*/, ""); split($0, u, /[ \t]+/); uri = u[1] }
			/^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
			END { flush() }' "$f"
	done | head -n 1 | grep . && return 0
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		sed -e 's/\[[^]]*\]//' "$f" | awk -v scripts="$scripts" '
			$1 == "deb" && $3 !~ /-/ && system("test -e " scripts "/" $3) == 0 { print $2; exit 0 }'
	done | head -n 1 | grep .
}

mirror() {
	if [[ -n ${DEVCLOUD_MIRROR:-} ]]; then
		echo "$DEVCLOUD_MIRROR"
		return
	fi
	host_mirror || die "no Debian mirror found in the host's apt sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list): set DEVCLOUD_MIRROR to the archive's URI"
}

# in_root CMD...: run CMD inside the chroot with /proc, /dev and /sys
# mounted in a private mount namespace (gone when CMD ends).
in_root() {
	unshare -m --propagation private -- /bin/sh -c '
		root=$1; shift
		mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && mount -t sysfs sys "$root/sys" || exit 1
		exec chroot "$root" "$@"' in_root "$ROOT" "$@"
}

# with_progress WHAT LOG CMD...: run CMD (output to LOG) in the
# background; every PROGRESS seconds print how long it has run and what it
# is doing (the count of packages unpacked and set up, or LOG's last
# line); kill it after BUILD_TIMEOUT seconds.
with_progress() {
	local what=$1 logf=$2 t0=$SECONDS next pid rc
	shift 2
	"$@" >>"$logf" 2>&1 </dev/null &
	pid=$!
	next=$((SECONDS + PROGRESS))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS - t0 >= BUILD_TIMEOUT)); then
			kill -TERM "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			tail -n 20 "$logf" >&2 || true
			die "$what: not done within ${BUILD_TIMEOUT}s (DEVCLOUD_BUILD_TIMEOUT; log: $logf)"
		fi
		if ((SECONDS >= next)); then
			local unpacked setup last
			unpacked=$(grep -c '^Unpacking ' "$logf" || true)
			setup=$(grep -c '^Setting up ' "$logf" || true)
			last=$(tail -n 1 "$logf" | cut -c1-100)
			if ((unpacked + setup > 0)); then
				log "$what: $((SECONDS - t0)) s, $unpacked packages unpacked, $setup set up"
			else
				log "$what: $((SECONDS - t0)) s: $last"
			fi
			next=$((SECONDS + PROGRESS))
		fi
		sleep 1
	done
	rc=0
	wait "$pid" || rc=$?
	if ((rc != 0)); then
		tail -n 20 "$logf" >&2 || true
		die "$what failed (exit $rc; log: $logf)"
	fi
	log "$what: done in $((SECONDS - t0)) s"
}

packages_marker() { printf '%s\n' "${PACKAGES[@]}"; }

cmd_check() {
	[[ -f $CHROOT_DIR/debootstrap.done ]] || {
		echo "no trixie chroot in $CHROOT_DIR (run: $0 build)"
		return 1
	}
	[[ -f $CHROOT_DIR/packages.done ]] && [[ $(cat "$CHROOT_DIR/packages.done") == "$(packages_marker)" ]] || {
		echo "the chroot in $CHROOT_DIR lacks its packages (run: $0 build)"
		return 1
	}
}

cmd_build() {
	[[ $(id -u) == 0 ]] || die "building the chroot needs root (debootstrap, chroot, mount)"
	local t0=$SECONDS m
	mkdir -p "$CHROOT_DIR"
	chmod 755 "$CHROOT_DIR"
	if [[ ! -f $CHROOT_DIR/debootstrap.done ]]; then
		command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install -y debootstrap"
		[[ -e /usr/share/debootstrap/scripts/$SUITE ]] || die "this debootstrap does not know $SUITE: install a newer debootstrap"
		m=$(mirror)
		# An interrupted debootstrap leaves a tree it cannot resume: start over.
		# Its mounts were private to its namespace, so nothing is mounted there.
		rm -rf "$ROOT"
		rm -f "$CHROOT_DIR/debootstrap.log"
		log "debootstrap --variant=minbase $SUITE into $ROOT from the host's mirror (about 2 minutes)"
		with_progress "debootstrap" "$CHROOT_DIR/debootstrap.log" \
			unshare -m --propagation private -- debootstrap --variant=minbase "$SUITE" "$ROOT" "$m"
		echo "$((SECONDS - t0))" >"$CHROOT_DIR/debootstrap.done"
		echo "chroot_debootstrap_seconds=$((SECONDS - t0))"
	else
		log "debootstrap: already done ($ROOT)"
		echo "chroot_debootstrap_seconds=0"
	fi
	local t1=$SECONDS
	if ! cmd_check >/dev/null; then
		# Nothing in the chroot may start a service while apt runs.
		printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
		chmod 755 "$ROOT/usr/sbin/policy-rc.d"
		# minbase has no /etc/hosts; RabbitMQ needs localhost, and the
		# fake virt driver's console host must be this machine.
		cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1	localhost fakespiceconsole.com
::1	localhost ip6-localhost ip6-loopback
EOF
		cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
		rm -f "$CHROOT_DIR/apt.log"
		log "apt-get install in the chroot: ${#PACKAGES[@]} packages and their dependencies (about 500; 10 minutes on 2 cores)"
		with_progress "apt-get update (chroot)" "$CHROOT_DIR/apt.log" in_root apt-get update
		with_progress "apt-get install (chroot)" "$CHROOT_DIR/apt.log" \
			in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			-o Dpkg::Use-Pty=0 "${PACKAGES[@]}"
		in_root apt-get clean
		packages_marker >"$CHROOT_DIR/packages.done"
	else
		log "packages: already installed"
	fi
	echo "chroot_apt_seconds=$((SECONDS - t1))"
	echo "chroot_seconds=$((SECONDS - t0))"
	echo "chroot_mib=$(du -sm "$ROOT" | cut -f1)"
}

cmd_purge() {
	case $CHROOT_DIR in
	/ | /var | /var/tmp | /tmp | "$HOME") die "refusing to delete DEVCLOUD_CHROOT=$CHROOT_DIR" ;;
	esac
	if [[ -d $CHROOT_DIR ]]; then
		# Every mount into it was private to a process's namespace; make sure
		# none is visible here before deleting (a bind mount of /dev would
		# take the host's device nodes with it).
		if grep -q " $ROOT/" /proc/self/mountinfo; then
			die "something is mounted under $ROOT: unmount it first"
		fi
		rm -rf "$CHROOT_DIR"
		log "removed $CHROOT_DIR"
	fi
}

case ${1:-} in
build) cmd_build ;;
check) cmd_check ;;
purge) cmd_purge ;;
mirror) mirror ;;
*)
	echo "usage: $0 build | check | purge | mirror" >&2
	exit 2
	;;
esac
