#!/usr/bin/env bash
# A minimal real OpenStack 2025.1 (Debian 13's nova 31, keystone 27,
# glance 30, placement 13, neutron 26) for the openstack provider's
# end-to-end tests: Keystone, Glance, Placement, Nova (compute_driver =
# kerbside_devcloud.virt's GuestDriver, Nova's fake driver that boots a real
# QEMU guest for servers of the flavor vdi-guest; spice-direct at
# microversion 2.99) and Neutron with no agents, over a private MariaDB
# (Unix socket only) and a private RabbitMQ. Glance is seeded with our own
# guest (harness/guest) as a qcow2, written by cmd/latency-guest-image.
# The daemons run in a trixie chroot (chroot.sh builds it) and in a network
# namespace of their own, bound to its 127.0.0.1: their ports never meet the
# host's, and nothing outside the namespace can reach them.
#
#   devcloud.sh install         build the chroot (chroot.sh build; skipped when complete)
#   devcloud.sh up OUTDIR       start (or find running) and seed; write OUTDIR/openrc,
#                               OUTDIR/admin-openrc, OUTDIR/noquota-openrc,
#                               OUTDIR/clouds.yaml, OUTDIR/devcloud.env
#   devcloud.sh exec CMD...     run CMD (as the caller, from the host's filesystem) in the
#                               cloud's namespace, where fakespiceconsole.com is 127.0.0.1
#   devcloud.sh status          what runs, on which ports, and its RSS
#   devcloud.sh down            stop every daemon it started, delete its state and namespace
#   devcloud.sh purge           down, then delete the chroot too
#
# Idempotent: install skips a complete chroot, up on a running cloud only
# checks it and rewrites OUTDIR, down on a stopped one does nothing. Every
# wait is bounded (DEVCLOUD_WAIT, default 240 s per service). State
# (configs, databases, logs, pids, passwords) lives in DEVCLOUD_STATE
# (default /var/tmp/kerbside-devcloud), the chroot in DEVCLOUD_CHROOT
# (default /var/tmp/kerbside-devcloud-chroot), the namespace is
# DEVCLOUD_NETNS (kerbside-devcloud). Nothing is written under the host's
# /etc: mounts are made inside private mount namespaces.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${DEVCLOUD_STATE:-/var/tmp/kerbside-devcloud}"
CHROOT_DIR="${DEVCLOUD_CHROOT:-/var/tmp/kerbside-devcloud-chroot}"
ROOT="$CHROOT_DIR/root"
NS="${DEVCLOUD_NETNS:-kerbside-devcloud}"
BASE="${DEVCLOUD_PORT_BASE:-28350}"
WAIT="${DEVCLOUD_WAIT:-240}"
export DEVCLOUD_CHROOT="$CHROOT_DIR"

# Inside the chroot the state directory is mounted here.
S=/devcloud
PY=/usr/bin/python3

KEYSTONE_PORT=$((BASE + 0))
GLANCE_PORT=$((BASE + 1))
PLACEMENT_PORT=$((BASE + 2))
NOVA_PORT=$((BASE + 3))
NEUTRON_PORT=$((BASE + 4))
RABBIT_PORT=$((BASE + 5))
RABBIT_DIST_PORT=$((BASE + 6))
EPMD_PORT=$((BASE + 7))
# Nova's [spice] spice_direct_proxy_base_url points here: Kerbside's
# endpoint, which the tests' stand-in (fixtures/kerbside) serves.
KERBSIDE_PORT=$((BASE + 8))
SPICE_PROXY_PORT=$((BASE + 9)) # spice-html5 URLs only: nothing listens there
# The per-server guests' SPICE ports (kerbside_devcloud.virt), in pairs
# (plain, TLS): 28400-28499 by default, 50 guests.
GUEST_PORT_BASE="${DEVCLOUD_GUEST_PORT_BASE:-$((BASE + 50))}"
GUEST_PORTS="${DEVCLOUD_GUEST_PORTS:-100}"
# The Go toolchain that writes the guest's image at `up` (run as root,
# whose PATH may lack it: the Makefile passes its own).
GO="${DEVCLOUD_GO:-go}"
REPO="$(cd "$HERE/../.." && pwd)"

# The fake virt driver gives every server this console address; the
# chroot's /etc/hosts and `exec`'s make the name this machine.
CONSOLE_HOST=fakespiceconsole.com

AUTH_URL="http://127.0.0.1:${KEYSTONE_PORT}/v3"

log() { printf 'devcloud: %s\n' "$*" >&2; }
die() {
	printf 'devcloud: error: %s\n' "$*" >&2
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need_root() { [[ $(id -u) == 0 ]] || die "the dev cloud needs root (network namespace, chroot, mounts): sudo $0 $*"; }

# ---------------------------------------------------------------- namespace and chroot

netns_up() {
	ip netns list 2>/dev/null | grep -qw "^$NS" || ip netns add "$NS" || die "ip netns add $NS failed"
	ip netns exec "$NS" ip link set lo up || die "cannot bring lo up in namespace $NS"
}

# IN_CLOUD mounts /proc, /dev, /sys and the state directory for the
# chroot in a private mount namespace (the mounts vanish with the
# process), then execs the command in the chroot. Every step execs, so
# the pid of the caller's child is the command's.
IN_CLOUD='
	root=$1 state=$2; shift 2
	mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && mount --rbind /sys "$root/sys" &&
		mount --bind "$state" "$root/devcloud" || { echo "devcloud: mounts for the chroot failed" >&2; exit 1; }
	exec chroot "$root" "$@"'

# in_cloud CMD...: run CMD inside the chroot, in the cloud's namespace,
# bounded by STEP seconds (default DEVCLOUD_STEP_TIMEOUT, 900: a schema
# migration on a busy machine).
in_cloud() {
	timeout --kill-after=10 "${STEP:-${DEVCLOUD_STEP_TIMEOUT:-900}}" ip netns exec "$NS" unshare -m --propagation private -- /bin/sh -c "$IN_CLOUD" in_cloud "$ROOT" "$STATE" "$@"
}

# ---------------------------------------------------------------- processes

pidfile() { echo "$STATE/run/$1.pid"; }

# starttime PID: the process's start time in clock ticks since boot
# (field 22 of /proc/PID/stat), which a reused pid does not share.
starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'; }

# pid_of NAME: the pid of the daemon if the pidfile names a live process
# that is still the one we started (pid and start time), else nothing.
# After a reboot or a killed session the pids in a stale pidfile may
# belong to someone else's processes: those are never signalled.
pid_of() {
	local f pid start
	f=$(pidfile "$1")
	[[ -s $f ]] || return 1
	read -r pid start <"$f" || true
	[[ -n $pid && -n $start ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	[[ $(starttime "$pid") == "$start" ]] || return 1
	echo "$pid"
}

alive() { pid_of "$1" >/dev/null; }

# start NAME CMD...: run CMD in the chroot and the namespace, in its own
# session, output to log/NAME.log.
start() {
	local name=$1
	shift
	if alive "$name"; then
		return
	fi
	setsid ip netns exec "$NS" unshare -m --propagation private -- /bin/sh -c "$IN_CLOUD" in_cloud "$ROOT" "$STATE" "$@" \
		>>"$STATE/log/$name.log" 2>&1 </dev/null &
	local pid=$!
	echo "$pid $(starttime "$pid")" >"$(pidfile "$name")"
}

# wait_for NAME DESCRIPTION CMD...: poll CMD until it succeeds, the
# daemon dies, or WAIT seconds pass; a line every 15 s says it still waits.
wait_for() {
	local name=$1 what=$2 deadline t0=$SECONDS next
	shift 2
	deadline=$((SECONDS + WAIT))
	next=$((SECONDS + 15))
	until "$@" >/dev/null 2>&1; do
		if ! alive "$name"; then
			tail -n 30 "$STATE/log/$name.log" >&2 || true
			die "$name exited before $what (log: $STATE/log/$name.log)"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$STATE/log/$name.log" >&2 || true
			die "$name: no $what within ${WAIT}s (DEVCLOUD_WAIT; log: $STATE/log/$name.log)"
		fi
		if ((SECONDS >= next)); then
			log "still waiting for $what ($((SECONDS - t0)) s)"
			next=$((SECONDS + 15))
		fi
		sleep 0.5
	done
}

# http_up PORT: something answers HTTP on 127.0.0.1:PORT in the namespace.
http_up() {
	timeout 10 ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && head -c 8 <&3 | grep -q '^HTTP/'"
}

tcp_up() { timeout 5 ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$1"; }

SERVICES=(mariadb epmd rabbitmq keystone glance placement neutron nova-api nova-conductor nova-scheduler nova-compute)

# ---------------------------------------------------------------- config

secret_of() {
	local f="$STATE/secrets/$1"
	if [[ ! -s $f ]]; then
		(umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$f")
	fi
	cat "$f"
}

write_configs() {
	local dbpw adminpw db
	dbpw=$(secret_of db)
	adminpw=$(secret_of admin)
	db() { echo "mysql+pymysql://devcloud:${dbpw}@localhost/$1?unix_socket=$S/mysql/mysqld.sock&charset=utf8"; }
	local rabbit="rabbit://guest:guest@127.0.0.1:${RABBIT_PORT}/"
	local authtoken="
[keystone_authtoken]
www_authenticate_uri = $AUTH_URL
auth_url = $AUTH_URL
auth_type = password
username = admin
password = $adminpw
project_name = admin
user_domain_name = Default
project_domain_name = Default
"
	local svcauth="auth_type = password
auth_url = $AUTH_URL
username = admin
password = $adminpw
project_name = admin
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne
valid_interfaces = public"

	(
		umask 077
		mkdir -p "$STATE/etc/keystone" "$STATE/etc/placement"
		cat >"$STATE/etc/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $S/log/keystone-app.log
[database]
connection = $(db keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = $S/keystone/fernet-keys
[credential]
key_repository = $S/keystone/credential-keys
EOF
		cat >"$STATE/etc/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $S/log/placement-app.log
[placement_database]
connection = $(db placement)
[api]
auth_strategy = keystone
$authtoken
EOF
		cat >"$STATE/etc/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $GLANCE_PORT
workers = 1
log_file = $S/log/glance-app.log
enabled_backends = file:file
[database]
connection = $(db glance)
[paste_deploy]
flavor = keystone
config_file = $S/src/paste/glance-api-paste.ini
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = $S/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $S/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $S/glance/tasks
[oslo_concurrency]
lock_path = $S/lock
$authtoken
EOF
		cat >"$STATE/etc/neutron.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $NEUTRON_PORT
core_plugin = ml2
service_plugins =
auth_strategy = keystone
api_paste_config = $S/src/paste/neutron-api-paste.ini
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = $rabbit
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
state_path = $S/neutron
log_file = $S/log/neutron-app.log
[database]
connection = $(db neutron)
[ml2]
type_drivers = local,flat
tenant_network_types = local
mechanism_drivers = kerbside_bind_all
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
[securitygroup]
firewall_driver = noop
[oslo_concurrency]
lock_path = $S/lock
$authtoken
EOF
		cat >"$STATE/etc/nova.conf" <<EOF
[DEFAULT]
host = devcloud
my_ip = 127.0.0.1
compute_driver = devcloud_guest.GuestDriver
transport_url = $rabbit
state_path = $S/nova
instances_path = $S/nova/instances
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $NOVA_PORT
osapi_compute_workers = 1
vif_plugging_timeout = 0
vif_plugging_is_fatal = false
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $S/src/paste/nova-api-paste.ini
[api_database]
connection = $(db nova_api)
[database]
connection = $(db nova_cell1)
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = -1
[spice]
enabled = true
agent_enabled = false
html5proxy_base_url = http://127.0.0.1:$SPICE_PROXY_PORT/spice_auto.html
spice_direct_proxy_base_url = http://127.0.0.1:$KERBSIDE_PORT/nova
server_listen = 127.0.0.1
server_proxyclient_address = 127.0.0.1
[vnc]
enabled = false
[oslo_concurrency]
lock_path = $S/lock
[placement]
$svcauth
[neutron]
$svcauth
[glance]
valid_interfaces = public
region_name = RegionOne
$authtoken
EOF
	)
}

# ---------------------------------------------------------------- up

SQL() { STEP=30 in_cloud mariadb --socket="$S/mysql/mysqld.sock" -uroot "$@"; }

start_mariadb() {
	if [[ ! -d $STATE/mysql/data/mysql ]]; then
		mkdir -p "$STATE/mysql/data"
		in_cloud mariadb-install-db --user=root --datadir="$S/mysql/data" --auth-root-authentication-method=socket \
			--skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 ||
			die "mariadb-install-db failed (log: $STATE/log/mariadb-install.log)"
	fi
	start mariadb /usr/sbin/mariadbd --no-defaults --user=root --datadir="$S/mysql/data" \
		--socket="$S/mysql/mysqld.sock" --pid-file="$S/mysql/mysqld.pid" --skip-networking \
		--innodb-buffer-pool-size=64M --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=0 \
		--max-connections=500 --log-error="$S/log/mariadb-server.log"
	wait_for mariadb "MariaDB answering" SQL -e 'select 1'
	local dbpw db
	dbpw=$(secret_of db)
	for db in keystone glance placement neutron nova_api nova_cell0 nova_cell1; do
		SQL -e "CREATE DATABASE IF NOT EXISTS $db"
	done
	# On stdin, not the command line: ps would show the password.
	SQL <<<"CREATE USER IF NOT EXISTS 'devcloud'@'localhost' IDENTIFIED BY '$dbpw'; GRANT ALL ON *.* TO 'devcloud'@'localhost'"
}

start_rabbitmq() {
	mkdir -p "$STATE/rabbitmq"
	# ERL_EPMD_ADDRESS and inet_dist_use_interface keep epmd and the
	# Erlang distribution port on 127.0.0.1 (they bind 0.0.0.0 otherwise).
	local env=(env HOME="$S/rabbitmq" ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1
		RABBITMQ_NODENAME=devcloud@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$RABBIT_PORT" RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT"
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
		RABBITMQ_MNESIA_BASE="$S/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$S/log/rabbitmq"
		RABBITMQ_ENABLED_PLUGINS_FILE="$S/rabbitmq/enabled_plugins"
		RABBITMQ_CONFIG_FILE="$S/rabbitmq/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$S/rabbitmq/advanced.config"
		RABBITMQ_CONF_ENV_FILE="$S/rabbitmq/rabbitmq-env.conf")
	[[ -f $STATE/rabbitmq/enabled_plugins ]] || echo '[].' >"$STATE/rabbitmq/enabled_plugins"
	touch "$STATE/rabbitmq/rabbitmq.conf" "$STATE/rabbitmq/rabbitmq-env.conf"
	[[ -f $STATE/rabbitmq/advanced.config ]] || echo '[].' >"$STATE/rabbitmq/advanced.config"
	start epmd "${env[@]}" epmd -address 127.0.0.1
	wait_for epmd "epmd listening" tcp_up "$EPMD_PORT"
	start rabbitmq "${env[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
	wait_for rabbitmq "AMQP port open" tcp_up "$RABBIT_PORT"
}

# pymain NAME MODULE:FUNC ARGS...: run an entry point like its console
# script, in the chroot and the namespace.
pymain() {
	local name=$1 ep=$2
	shift 2
	in_cloud env PYTHONPATH="$S/src/py" "$PY" -c "import sys; sys.argv[0] = '$name'; from ${ep%%:*} import ${ep##*:} as f; sys.exit(f())" \
		"$@" >>"$STATE/log/$name.log" 2>&1 || die "$name failed: $* (log: $STATE/log/$name.log)"
}

sync_databases() {
	local adminpw
	adminpw=$(secret_of admin)
	local K=(--config-file "$S/etc/keystone/keystone.conf")
	(
		pymain keystone-manage keystone.cmd.manage:main "${K[@]}" db_sync
		mkdir -p "$STATE/keystone/fernet-keys" "$STATE/keystone/credential-keys"
		pymain keystone-manage keystone.cmd.manage:main "${K[@]}" fernet_setup --keystone-user root --keystone-group root
		pymain keystone-manage keystone.cmd.manage:main "${K[@]}" credential_setup --keystone-user root --keystone-group root
		# keystone-manage reads the password from OS_BOOTSTRAP_PASSWORD: not on the command line.
		export OS_BOOTSTRAP_PASSWORD="$adminpw"
		pymain keystone-manage keystone.cmd.manage:main "${K[@]}" bootstrap \
			--bootstrap-admin-url "$AUTH_URL" --bootstrap-internal-url "$AUTH_URL" --bootstrap-public-url "$AUTH_URL" \
			--bootstrap-region-id RegionOne
	) &
	local k=$!
	(
		pymain glance-manage glance.cmd.manage:main --config-file "$S/etc/glance-api.conf" db_sync
		OS_PLACEMENT_CONFIG_DIR="$S/etc/placement" pymain placement-manage placement.cmd.manage:main \
			--config-dir "$S/etc/placement" db sync
	) &
	local g=$!
	(
		local N=(--config-file "$S/etc/nova.conf")
		pymain nova-manage nova.cmd.manage:main "${N[@]}" api_db sync
		pymain nova-manage nova.cmd.manage:main "${N[@]}" cell_v2 map_cell0 \
			--database_connection "$(sed -n 's/^connection = \(.*\)nova_cell1\(.*\)$/\1nova_cell0\2/p' "$STATE/etc/nova.conf" | head -n1)"
		in_cloud env PYTHONPATH="$S/src/py" "$PY" -c "import sys; sys.argv[0] = 'nova-manage'; from nova.cmd.manage import main; sys.exit(main())" \
			"${N[@]}" cell_v2 create_cell --name cell1 >>"$STATE/log/nova-manage.log" 2>&1 ||
			true # exists already (exit 2) on a second up
		pymain nova-manage nova.cmd.manage:main "${N[@]}" db sync
	) &
	local n=$!
	pymain neutron-db-manage neutron.db.migration.cli:main --config-file "$S/etc/neutron.conf" upgrade heads
	wait $k || die "keystone database setup failed (logs in $STATE/log)"
	wait $g || die "glance/placement database setup failed (logs in $STATE/log)"
	wait $n || die "nova database setup failed (logs in $STATE/log)"
}

uwsgi_conf() { # NAME PORT MODULE
	cat >"$STATE/etc/$1-uwsgi.ini" <<EOF
[uwsgi]
plugins-dir = /usr/lib/uwsgi/plugins
plugins = python3
http-socket = 127.0.0.1:$2
module = $3
master = true
processes = 2
threads = 1
enable-threads = true
lazy-apps = true
die-on-term = true
buffer-size = 65535
; without it keep-alive clients (Go's http.Client) meet ECONNRESET
add-header = Connection: close
hook-master-start = unix_signal:15 gracefully_kill_them_all
EOF
}

# compute_fresh: nova-compute reported in within the last 30 s (a
# mapping alone passes after compute died; a heartbeat does not).
compute_fresh() {
	SQL -N -e "select count(*) from nova_cell1.services where \`binary\`='nova-compute' and host='devcloud' and deleted=0 and
		updated_at >= utc_timestamp() - interval 30 second" | grep -qx 1
}

discover_host() {
	compute_fresh || return 1
	STEP=120 in_cloud "$PY" -c 'import sys; sys.argv[0] = "nova-manage"; from nova.cmd.manage import main; sys.exit(main())' \
		--config-file "$S/etc/nova.conf" cell_v2 discover_hosts --verbose >>"$STATE/log/nova-manage.log" 2>&1 &&
		SQL -N -e "select count(*) from nova_api.host_mappings where host='devcloud'" | grep -qx 1
}

cmd_install() {
	need_root install
	bash "$HERE/chroot.sh" build
}

cmd_up() {
	local out=${1:-}
	[[ -n $out ]] || die "usage: $0 up OUTDIR (where openrc, admin-openrc and clouds.yaml are written)"
	need_root up "$out"
	bash "$HERE/chroot.sh" check >&2 || die "no complete trixie chroot: run $0 install (about 12 minutes the first time)"
	local t0 t1
	t0=$(now)
	mkdir -p "$STATE"/{run,log,secrets,lock,glance/images,glance/staging,glance/tasks,nova/instances,neutron}
	chmod 700 "$STATE" "$STATE/secrets"
	mkdir -p "$ROOT$S"
	# The project's pieces, where the chroot sees them.
	rm -rf "$STATE/src"
	mkdir -p "$STATE/src"
	cp -r "$HERE/py" "$HERE/paste" "$STATE/src/"
	netns_up

	local fresh=0 s
	for s in "${SERVICES[@]}"; do alive "$s" || fresh=1; done
	if ((fresh)); then
		write_configs
		start_mariadb
		start_rabbitmq
		log "databases and message queue up in $(elapsed "$t0") s"
		if [[ ! -f $STATE/run/synced ]]; then
			log "creating the databases' schemas (about a minute)"
			sync_databases
			touch "$STATE/run/synced"
		fi
		log "databases synced at $(elapsed "$t0") s"

		uwsgi_conf keystone "$KEYSTONE_PORT" keystone.wsgi.api:application
		uwsgi_conf placement "$PLACEMENT_PORT" placement.wsgi.api:application
		start keystone env OS_KEYSTONE_CONFIG_DIR="$S/etc/keystone" /usr/bin/uwsgi --ini "$S/etc/keystone-uwsgi.ini"
		start placement env OS_PLACEMENT_CONFIG_DIR="$S/etc/placement" /usr/bin/uwsgi --ini "$S/etc/placement-uwsgi.ini"
		start glance env PYTHONPATH="$S/src/py" "$PY" -c 'import sys; sys.argv[0] = "glance-api"; from glance.cmd.api import main; sys.exit(main())' \
			--config-file "$S/etc/glance-api.conf"
		start neutron env PYTHONPATH="$S/src/py" "$PY" -m kerbside_devcloud.neutron_server --config-file "$S/etc/neutron.conf"
		local N=(--config-file "$S/etc/nova.conf")
		start nova-api "$PY" -c 'import sys; sys.argv[0] = "nova-api"; from nova.cmd.api import main; sys.exit(main())' "${N[@]}"
		wait_for keystone "Keystone answering" http_up "$KEYSTONE_PORT"
		# The catalog must name placement before the scheduler, conductor
		# and compute look for it (they exit when it does not).
		seed catalog
		start nova-conductor "$PY" -c 'import sys; sys.argv[0] = "nova-conductor"; from nova.cmd.conductor import main; sys.exit(main())' "${N[@]}"
		start nova-scheduler "$PY" -c 'import sys; sys.argv[0] = "nova-scheduler"; from nova.cmd.scheduler import main; sys.exit(main())' "${N[@]}"
		# The fake driver's node UUID is random per process, and nova-compute
		# refuses a second start whose node is new; the launcher pins it.
		# The driver's guests: see kerbside_devcloud/virt.py.
		start nova-compute env PYTHONPATH="$S/src/py" DEVCLOUD_NOVA_STATE="$S/nova" DEVCLOUD_CONSOLE_HOST="$CONSOLE_HOST" \
			DEVCLOUD_GUEST_PORT_BASE="$GUEST_PORT_BASE" DEVCLOUD_GUEST_PORTS="$GUEST_PORTS" DEVCLOUD_GUEST_X509="$S/x509" \
			"$PY" -m kerbside_devcloud.compute "${N[@]}"
		wait_for glance "Glance answering" http_up "$GLANCE_PORT"
		wait_for placement "Placement answering" http_up "$PLACEMENT_PORT"
		wait_for neutron "Neutron answering" http_up "$NEUTRON_PORT"
		wait_for nova-api "Nova answering" http_up "$NOVA_PORT"
		t1=$(now)
		log "services answering at $(elapsed "$t0") s"
		wait_for nova-compute "a fresh nova-compute heartbeat and its host in the cell" discover_host
		log "compute host discovered at $(elapsed "$t0") s"
		for s in "${SERVICES[@]}"; do
			alive "$s" || {
				tail -n 30 "$STATE/log/$s.log" >&2 || true
				die "$s exited during start (log: $STATE/log/$s.log)"
			}
		done
	else
		log "already running (state in $STATE)"
		wait_for nova-compute "a fresh nova-compute heartbeat" compute_fresh
		t1=$(now)
	fi
	local ts
	ts=$(now)
	guest_image
	seed all
	write_outputs "$out"
	{
		echo "start_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
		echo "seed_seconds=$(elapsed "$ts")"
		echo "up_seconds=$(elapsed "$t0")"
		echo "rss_mib=$(rss_mib)"
	} | tee "$out/devcloud-times.env"
}

# guest_image: our guest (harness/guest) as the qcow2 that seed uploads,
# written by our own Go command (no qemu-img).
guest_image() {
	local img="$STATE/glance/seed-image.qcow2"
	(cd "$REPO" && "$GO" run ./cmd/latency-guest-image -format qcow2 -o "$img") >&2 ||
		die "cannot write the guest's image with $GO run ./cmd/latency-guest-image (DEVCLOUD_GO names the Go toolchain)"
	echo "guest_image_bytes=$(stat -c %s "$img")"
}

seed() {
	# The passwords travel in the environment, never on a command line
	# (which ps shows to every user).
	(
		export DEVCLOUD_AUTH_URL="$AUTH_URL" DEVCLOUD_STATE="$S" DEVCLOUD_PORT_BASE="$BASE" PYTHONPATH="$S/src/py"
		DEVCLOUD_ADMIN_PASSWORD="$(secret_of admin)" DEVCLOUD_USER_PASSWORD="$(secret_of user)"
		export DEVCLOUD_ADMIN_PASSWORD DEVCLOUD_USER_PASSWORD
		STEP=300 in_cloud "$PY" -m kerbside_devcloud.seed "$1" 2>>"$STATE/log/seed.log"
	) || die "seeding ($1) failed (log: $STATE/log/seed.log)"
}

write_outputs() {
	local out=$1 adminpw userpw
	adminpw=$(secret_of admin)
	userpw=$(secret_of user)
	mkdir -p "$out"
	(
		umask 077
		rc() { # FILE USER PASSWORD PROJECT
			cat >"$1" <<EOF
# The kerbside-latency dev cloud ($STATE), reachable only inside network
# namespace $NS: run clients with deploy/devcloud/devcloud.sh exec. Source it: . $1
export OS_AUTH_URL=$AUTH_URL
export OS_USERNAME=$2
export OS_PASSWORD=$3
export OS_PROJECT_NAME=$4
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
export OS_INTERFACE=public
export OS_IDENTITY_API_VERSION=3
EOF
		}
		rc "$out/openrc" latency "$userpw" kerbside-latency
		rc "$out/admin-openrc" admin "$adminpw" admin
		rc "$out/noquota-openrc" latency "$userpw" kerbside-latency-noquota
		cat >"$out/clouds.yaml" <<EOF
# The kerbside-latency dev cloud ($STATE), inside network namespace $NS:
# OS_CLOUD=devcloud (member), devcloud-admin, devcloud-noquota (a project
# whose instance quota is 0).
clouds:
  devcloud:
    auth:
      auth_url: $AUTH_URL
      username: latency
      password: $userpw
      project_name: kerbside-latency
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  devcloud-admin:
    auth:
      auth_url: $AUTH_URL
      username: admin
      password: $adminpw
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  devcloud-noquota:
    auth:
      auth_url: $AUTH_URL
      username: latency
      password: $userpw
      project_name: kerbside-latency-noquota
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
EOF
		cat >"$out/devcloud.env" <<EOF
DEVCLOUD_STATE=$STATE
DEVCLOUD_NETNS=$NS
DEVCLOUD_PORT_BASE=$BASE
DEVCLOUD_IMAGE=uefi-latency-guest
DEVCLOUD_FLAVOR=vdi-tiny
DEVCLOUD_FLAVOR_TOO_BIG=devcloud-too-big
DEVCLOUD_FLAVOR_GUEST=vdi-guest
DEVCLOUD_GUEST_DIR=$STATE/nova/guests
DEVCLOUD_GUEST_X509=$STATE/x509
DEVCLOUD_GUEST_PORTS=$GUEST_PORT_BASE-$((GUEST_PORT_BASE + GUEST_PORTS - 1))
DEVCLOUD_NETWORK=public1
DEVCLOUD_IMAGE_FILE=$STATE/glance/seed-image.qcow2
DEVCLOUD_KERBSIDE_LISTEN=127.0.0.1:$KERBSIDE_PORT
DEVCLOUD_CONSOLE_HOST=$CONSOLE_HOST
DEVCLOUD_CONSOLE_PORT=6969
DEVCLOUD_CONSOLE_TLS_PORT=6970
EOF
	)
	log "wrote $out/openrc, $out/admin-openrc, $out/noquota-openrc, $out/clouds.yaml, $out/devcloud.env"
}

# rss_mib: the resident memory of every process of the cloud, in MiB.
rss_mib() {
	local s pid pids=()
	for s in "${SERVICES[@]}"; do
		pid=$(pid_of "$s") || continue
		# the session: the daemon and its workers
		pids+=($(ps -o pid= -s "$pid" 2>/dev/null || true))
	done
	((${#pids[@]})) || {
		echo 0
		return
	}
	ps -o rss= -p "$(
		IFS=,
		echo "${pids[*]}"
	)" | awk '{ s += $1 } END { printf "%d", s / 1024 }'
}

# cmd_exec CMD...: CMD in the cloud's namespace, on the host's filesystem,
# with a private /etc/hosts (the host's plus the fake driver's console
# host on 127.0.0.1) bind-mounted in a private mount namespace: the
# host's /etc/hosts is never touched.
cmd_exec() {
	(($#)) || die "usage: $0 exec CMD [ARGS...]"
	need_root exec
	ip netns list 2>/dev/null | grep -qw "^$NS" || die "no network namespace $NS: run $0 up OUTDIR first"
	mkdir -p "$STATE/run"
	{
		cat /etc/hosts
		echo "127.0.0.1	$CONSOLE_HOST"
	} >"$STATE/run/hosts"
	exec ip netns exec "$NS" unshare -m --propagation private -- /bin/sh -c '
		mount --bind "$1" /etc/hosts || { echo "devcloud: cannot mount a private /etc/hosts" >&2; exit 1; }
		shift; exec "$@"' exec "$STATE/run/hosts" "$@"
}

cmd_status() {
	local s pid
	for s in "${SERVICES[@]}"; do
		if pid=$(pid_of "$s"); then
			printf '%-15s running (pid %s)\n' "$s" "$pid"
		else
			printf '%-15s stopped\n' "$s"
		fi
	done
	echo "namespace $NS; ports: keystone $KEYSTONE_PORT, glance $GLANCE_PORT, placement $PLACEMENT_PORT, nova $NOVA_PORT, neutron $NEUTRON_PORT, amqp $RABBIT_PORT, kerbside $KERBSIDE_PORT"
	echo "guests: $(guest_pids | wc -w) QEMU running (ports $GUEST_PORT_BASE-$((GUEST_PORT_BASE + GUEST_PORTS - 1)))"
	echo "rss_mib=$(rss_mib)"
}

# guest_pids: the live QEMUs of the driver's guests (their pidfiles hold
# pid and start time, so a reused pid is never named).
guest_pids() {
	local f pid start
	shopt -s nullglob
	for f in "$STATE"/nova/guests/*/qemu.pid; do
		read -r pid start <"$f" || continue
		[[ -n $pid && -n $start ]] || continue
		if [[ $(starttime "$pid") == "$start" ]]; then echo "$pid"; fi
	done
	shopt -u nullglob
	return 0
}

cmd_down() {
	local s pid t0=$SECONDS deadline live=()
	# Every daemon at once (the state is deleted anyway): SIGTERM to each
	# session, a bounded wait for all of them together, then SIGKILL.
	for s in "${SERVICES[@]}"; do
		[[ -s $(pidfile "$s") ]] || continue
		if pid=$(pid_of "$s"); then
			log "stopping $s"
			kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
			live+=("$pid")
		fi
	done
	deadline=$((SECONDS + 15))
	while ((SECONDS < deadline)); do
		local any=0
		for pid in "${live[@]}"; do kill -0 "$pid" 2>/dev/null && any=1; done
		((any)) || break
		sleep 0.2
	done
	for pid in "${live[@]}"; do
		# Workers left in a session (uwsgi, eventlet forks, Erlang) go with it.
		kill -KILL -- "-$pid" 2>/dev/null || true
	done
	# The guests die with nova-compute (pdeathsig, and its session was
	# killed); one that did not is killed here and named: none may outlive
	# the cloud.
	local left
	left=$(guest_pids | tr '\n' ' ')
	if [[ -n ${left// /} ]]; then
		log "guest QEMUs still running after nova-compute stopped: $left; killing them"
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null || true
		sleep 0.5
		[[ -z $(guest_pids) ]] || die "guest QEMUs $(guest_pids | tr '\n' ' ') survive SIGKILL"
	fi
	rm -f "$STATE"/run/*.pid
	if [[ -d $STATE ]]; then
		case $STATE in
		/ | /var | /var/tmp | /tmp | "$HOME") die "refusing to delete DEVCLOUD_STATE=$STATE" ;;
		esac
		rm -rf "$STATE"
		log "removed $STATE"
	fi
	if ip netns list 2>/dev/null | grep -qw "^$NS"; then
		# Anything we started is gone; a process still in the namespace is
		# someone's `exec`: say so rather than pull the namespace from it.
		if [[ -n $(ip netns pids "$NS" 2>/dev/null) ]]; then
			log "namespace $NS still has processes ($(ip netns pids "$NS" | tr '\n' ' ')): left in place"
		else
			ip netns delete "$NS"
			log "removed namespace $NS"
		fi
	fi
	echo "down_seconds=$((SECONDS - t0))"
}

case ${1:-} in
install) cmd_install ;;
up) cmd_up "${2:-}" ;;
exec)
	shift
	cmd_exec "$@"
	;;
down) cmd_down ;;
purge)
	cmd_down
	bash "$HERE/chroot.sh" purge
	;;
status) cmd_status ;;
*)
	echo "usage: $0 install | up OUTDIR | exec CMD... | status | down | purge" >&2
	exit 2
	;;
esac
