#!/usr/bin/env bash
# A minimal real OpenStack (Debian 12's Zed) on 127.0.0.1 for the
# openstack provider's end-to-end tests: Keystone, Glance, Placement, Nova
# (compute_driver = fake.FakeDriver) and Neutron with no agents, over a
# private MariaDB (Unix socket only) and a private RabbitMQ.
#
#   devcloud.sh install         apt-get the python3-* libraries, MariaDB, RabbitMQ
#   devcloud.sh up OUTDIR       start (or find running) and seed; write OUTDIR/openrc,
#                               OUTDIR/admin-openrc, OUTDIR/clouds.yaml, OUTDIR/devcloud.env
#   devcloud.sh down            stop every daemon it started and delete its state
#   devcloud.sh status          what runs, on which ports, and its RSS
#
# Idempotent: install skips what is installed, up on a running cloud only
# checks it and rewrites OUTDIR, down on a stopped one does nothing. Every
# wait is bounded (DEVCLOUD_WAIT, default 120 s per service). Ports are
# DEVCLOUD_PORT_BASE (default 28350) + 0..7; each is checked free first and
# a clash is reported with what holds the port and how to move.
# State (configs, databases, logs, pids, passwords) lives in DEVCLOUD_STATE
# (default /var/tmp/kerbside-devcloud); nothing is written under /etc.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${DEVCLOUD_STATE:-/var/tmp/kerbside-devcloud}"
BASE="${DEVCLOUD_PORT_BASE:-28350}"
WAIT="${DEVCLOUD_WAIT:-120}"
PY=/usr/bin/python3 # not a pyenv or venv python: the libraries are Debian's

KEYSTONE_PORT=$((BASE + 0))
GLANCE_PORT=$((BASE + 1))
PLACEMENT_PORT=$((BASE + 2))
NOVA_PORT=$((BASE + 3))
NEUTRON_PORT=$((BASE + 4))
RABBIT_PORT=$((BASE + 5))
RABBIT_DIST_PORT=$((BASE + 6))
EPMD_PORT=$((BASE + 7))
SPICE_PROXY_PORT=$((BASE + 8)) # only in console URLs: nothing listens there

# The library packages (not the service packages, which pull in debconf
# prompts, libvirt and init scripts), the databases, and the tools used here.
PACKAGES=(
	mariadb-server rabbitmq-server
	python3-keystone python3-glance python3-placement python3-nova python3-neutron
	python3-pymysql python3-openstacksdk
	uwsgi-core uwsgi-plugin-python3
	curl iproute2
)

AUTH_URL="http://127.0.0.1:${KEYSTONE_PORT}/v3"

log() { printf 'devcloud: %s\n' "$*" >&2; }
die() {
	printf 'devcloud: error: %s\n' "$*" >&2
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- install

missing_packages() {
	local p out=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out+=("$p")
	done
	echo "${out[@]:-}"
}

cmd_install() {
	local t0 missing
	t0=$(now)
	missing=$(missing_packages)
	if [[ -z "$missing" ]]; then
		log "packages already installed"
		echo "apt_seconds=0"
		return
	fi
	[[ $(id -u) == 0 ]] || die "installing packages needs root: sudo $0 install (missing: $missing)"
	log "installing: $missing"
	# A fresh machine has no package lists yet; an old list may name
	# versions the mirror no longer has.
	apt-get update -q >"${DEVCLOUD_APT_LOG:-/dev/null}" 2>&1 || die "apt-get update failed (DEVCLOUD_APT_LOG=FILE keeps apt's output)"
	# policy-rc.d keeps the packages' init scripts from starting the system
	# MariaDB and RabbitMQ: this cloud runs private instances of both.
	local policy=/usr/sbin/policy-rc.d made_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	# shellcheck disable=SC2086 # a word list
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >>"${DEVCLOUD_APT_LOG:-/dev/null}" 2>&1 ||
		{
			((made_policy)) && rm -f "$policy"
			die "apt-get install failed (run apt-get update first? DEVCLOUD_APT_LOG=FILE keeps apt's output)"
		}
	((made_policy)) && rm -f "$policy"
	log "packages installed in $(elapsed "$t0") s"
	echo "apt_seconds=$(elapsed "$t0")"
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

# start NAME CMD...: run CMD in its own session, output to log/NAME.log.
start() {
	local name=$1
	shift
	if alive "$name"; then
		return
	fi
	setsid "$@" >>"$STATE/log/$name.log" 2>&1 </dev/null &
	local pid=$!
	echo "$pid $(starttime "$pid")" >"$(pidfile "$name")"
}

# stop NAME: SIGTERM the session, then SIGKILL after 10 s.
stop() {
	local name=$1 f pid i
	f=$(pidfile "$name")
	[[ -s $f ]] || return 0
	if ! pid=$(pid_of "$name"); then
		rm -f "$f" # stale: the process is gone (or the pid is someone else's now)
		return 0
	fi
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name (pid $pid) ignored SIGTERM for 10 s; killing it"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	# Workers left in the session (uwsgi, eventlet forks) go with it.
	kill -KILL -- "-$pid" 2>/dev/null || true
	rm -f "$f"
}

# wait_for NAME DESCRIPTION CMD...: poll CMD until it succeeds, the
# daemon dies, or WAIT seconds pass.
wait_for() {
	local name=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + WAIT))
	until "$@" >/dev/null 2>&1; do
		if ! alive "$name"; then
			tail -n 30 "$STATE/log/$name.log" >&2 || true
			die "$name exited before $what (log: $STATE/log/$name.log)"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$STATE/log/$name.log" >&2 || true
			die "$name: no $what within ${WAIT}s (DEVCLOUD_WAIT; log: $STATE/log/$name.log)"
		fi
		sleep 0.3
	done
}

http_up() { curl -s -o /dev/null -m 5 "$1"; }

# port_free PORT NAME: fail clearly when something else listens on PORT.
port_free() {
	local port=$1 name=$2 who
	who=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
	if [[ -n $who ]]; then
		die "port $port (for $name) is already in use: $who
set DEVCLOUD_PORT_BASE to a free range of 9 ports (now $BASE), or stop what holds it"
	fi
}

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
	db() { echo "mysql+pymysql://devcloud:${dbpw}@localhost/$1?unix_socket=$STATE/mysql/mysqld.sock&charset=utf8"; }
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
log_file = $STATE/log/keystone-app.log
[database]
connection = $(db keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = $STATE/keystone/fernet-keys
[credential]
key_repository = $STATE/keystone/credential-keys
EOF
		cat >"$STATE/etc/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $STATE/log/placement-app.log
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
log_file = $STATE/log/glance-app.log
[database]
connection = $(db glance)
[paste_deploy]
flavor = keystone
config_file = $HERE/paste/glance-api-paste.ini
[glance_store]
stores = file
default_store = file
filesystem_store_datadir = $STATE/glance/images
[oslo_concurrency]
lock_path = $STATE/lock
$authtoken
EOF
		cat >"$STATE/etc/neutron.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $NEUTRON_PORT
core_plugin = ml2
service_plugins =
auth_strategy = keystone
api_paste_config = $HERE/paste/neutron-api-paste.ini
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = $rabbit
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
state_path = $STATE/neutron
log_file = $STATE/log/neutron-app.log
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
lock_path = $STATE/lock
$authtoken
EOF
		cat >"$STATE/etc/nova.conf" <<EOF
[DEFAULT]
host = devcloud
my_ip = 127.0.0.1
compute_driver = fake.FakeDriver
transport_url = $rabbit
state_path = $STATE/nova
instances_path = $STATE/nova/instances
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $NOVA_PORT
osapi_compute_workers = 1
vif_plugging_timeout = 0
vif_plugging_is_fatal = false
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $HERE/paste/nova-api-paste.ini
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
server_listen = 127.0.0.1
server_proxyclient_address = 127.0.0.1
[vnc]
enabled = false
[oslo_concurrency]
lock_path = $STATE/lock
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

SQL() { mariadb --socket="$STATE/mysql/mysqld.sock" -uroot "$@"; }

start_mariadb() {
	if [[ ! -d $STATE/mysql/data/mysql ]]; then
		mkdir -p "$STATE/mysql/data"
		mariadb-install-db --user=root --datadir="$STATE/mysql/data" --auth-root-authentication-method=socket \
			--skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 ||
			die "mariadb-install-db failed (log: $STATE/log/mariadb-install.log)"
	fi
	start mariadb /usr/sbin/mariadbd --no-defaults --user=root --datadir="$STATE/mysql/data" \
		--socket="$STATE/mysql/mysqld.sock" --pid-file="$STATE/mysql/mysqld.pid" --skip-networking \
		--innodb-buffer-pool-size=64M --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=0 \
		--max-connections=500 --log-error="$STATE/log/mariadb-server.log"
	wait_for mariadb "MariaDB answering" SQL -e 'select 1'
	local dbpw db
	dbpw=$(secret_of db)
	for db in keystone glance placement neutron nova_api nova_cell0 nova_cell1; do
		SQL -e "CREATE DATABASE IF NOT EXISTS $db"
	done
	SQL -e "CREATE USER IF NOT EXISTS 'devcloud'@'localhost' IDENTIFIED BY '$dbpw'; GRANT ALL ON *.* TO 'devcloud'@'localhost'"
}

start_rabbitmq() {
	mkdir -p "$STATE/rabbitmq"
	local env=(env HOME="$STATE/rabbitmq" ERL_EPMD_PORT="$EPMD_PORT"
		RABBITMQ_NODENAME=devcloud@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$RABBIT_PORT" RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT"
		RABBITMQ_MNESIA_BASE="$STATE/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$STATE/log/rabbitmq"
		RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/rabbitmq/enabled_plugins"
		RABBITMQ_CONFIG_FILE="$STATE/rabbitmq/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$STATE/rabbitmq/advanced.config"
		RABBITMQ_CONF_ENV_FILE="$STATE/rabbitmq/rabbitmq-env.conf")
	[[ -f $STATE/rabbitmq/enabled_plugins ]] || echo '[].' >"$STATE/rabbitmq/enabled_plugins"
	touch "$STATE/rabbitmq/rabbitmq.conf" "$STATE/rabbitmq/rabbitmq-env.conf"
	[[ -f $STATE/rabbitmq/advanced.config ]] || echo '[].' >"$STATE/rabbitmq/advanced.config"
	start epmd "${env[@]}" epmd -address 127.0.0.1
	wait_for epmd "epmd listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$EPMD_PORT"
	start rabbitmq "${env[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
	wait_for rabbitmq "AMQP port open" bash -c "exec 3<>/dev/tcp/127.0.0.1/$RABBIT_PORT"
}

# pyrun NAME MODULE ARGS...: a one-shot command from a library's module.
pyrun() {
	local name=$1
	shift
	PYTHONPATH="$HERE/py" "$PY" -c 'import runpy, sys; m = sys.argv[1]; sys.argv = sys.argv[1:]; runpy.run_module(m, run_name="__main__")' \
		"$@" >>"$STATE/log/$name.log" 2>&1 || die "$name failed: $* (log: $STATE/log/$name.log)"
}

# pymain NAME MODULE:FUNC ARGS...: run an entry point like its console script.
pymain() {
	local name=$1 ep=$2
	shift 2
	PYTHONPATH="$HERE/py" "$PY" -c "import sys; sys.argv[0] = '$name'; from ${ep%%:*} import ${ep##*:} as f; sys.exit(f())" \
		"$@" >>"$STATE/log/$name.log" 2>&1 || die "$name failed: $* (log: $STATE/log/$name.log)"
}

sync_databases() {
	local adminpw
	adminpw=$(secret_of admin)
	local K=(--config-file "$STATE/etc/keystone/keystone.conf")
	(
		pymain keystone-manage keystone.cmd.manage:main "${K[@]}" db_sync
		mkdir -p "$STATE/keystone/fernet-keys" "$STATE/keystone/credential-keys"
		pymain keystone-manage keystone.cmd.manage:main "${K[@]}" fernet_setup --keystone-user root --keystone-group root
		pymain keystone-manage keystone.cmd.manage:main "${K[@]}" credential_setup --keystone-user root --keystone-group root
		pymain keystone-manage keystone.cmd.manage:main "${K[@]}" bootstrap --bootstrap-password "$adminpw" \
			--bootstrap-admin-url "$AUTH_URL" --bootstrap-internal-url "$AUTH_URL" --bootstrap-public-url "$AUTH_URL" \
			--bootstrap-region-id RegionOne
	) &
	local k=$!
	(
		pymain glance-manage glance.cmd.manage:main --config-file "$STATE/etc/glance-api.conf" db_sync
		OS_PLACEMENT_CONFIG_DIR="$STATE/etc/placement" pymain placement-manage placement.cmd.manage:main \
			--config-dir "$STATE/etc/placement" db sync
	) &
	local g=$!
	(
		local N=(--config-file "$STATE/etc/nova.conf")
		pymain nova-manage nova.cmd.manage:main "${N[@]}" api_db sync
		pymain nova-manage nova.cmd.manage:main "${N[@]}" cell_v2 map_cell0 \
			--database_connection "$(sed -n 's/^connection = \(.*\)nova_cell1\(.*\)$/\1nova_cell0\2/p' "$STATE/etc/nova.conf" | head -n1)"
		pymain nova-manage nova.cmd.manage:main "${N[@]}" cell_v2 create_cell --name cell1 ||
			true # exists already (exit 2) on a second up
		pymain nova-manage nova.cmd.manage:main "${N[@]}" db sync
	) &
	local n=$!
	pymain neutron-db-manage neutron.db.migration.cli:main --config-file "$STATE/etc/neutron.conf" upgrade heads
	wait $k || die "keystone database setup failed (logs in $STATE/log)"
	wait $g || die "glance/placement database setup failed (logs in $STATE/log)"
	wait $n || die "nova database setup failed (logs in $STATE/log)"
}

uwsgi_conf() { # NAME PORT WSGI_FILE
	cat >"$STATE/etc/$1-uwsgi.ini" <<EOF
[uwsgi]
plugins-dir = /usr/lib/uwsgi/plugins
plugins = python3
http-socket = 127.0.0.1:$2
wsgi-file = $3
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

cmd_up() {
	local out=${1:-}
	[[ -n $out ]] || die "usage: $0 up OUTDIR (where openrc, admin-openrc and clouds.yaml are written)"
	[[ $(id -u) == 0 ]] || die "the dev cloud runs as root (sudo $0 up $out)"
	local missing
	missing=$(missing_packages)
	[[ -z $missing ]] || die "packages missing: $missing; run: $0 install"
	local t0 t1
	t0=$(now)
	mkdir -p "$STATE"/{run,log,secrets,lock,glance/images,nova/instances,neutron}
	chmod 700 "$STATE" "$STATE/secrets"

	local fresh=0 s
	for s in "${SERVICES[@]}"; do alive "$s" || fresh=1; done
	if ((fresh)); then
		local port name i=0
		for name in keystone glance placement nova neutron rabbitmq rabbitmq-dist epmd; do
			port=$((BASE + i))
			i=$((i + 1))
			case $name in
			rabbitmq | rabbitmq-dist | epmd) alive rabbitmq && continue ;;
			nova) alive nova-api && continue ;;
			*) alive "$name" && continue ;;
			esac
			port_free "$port" "$name"
		done
		write_configs
		start_mariadb
		start_rabbitmq
		log "databases and message queue up in $(elapsed "$t0") s"
		if [[ ! -f $STATE/run/synced ]]; then
			sync_databases
			touch "$STATE/run/synced"
		fi
		log "databases synced at $(elapsed "$t0") s"

		uwsgi_conf keystone "$KEYSTONE_PORT" /usr/bin/keystone-wsgi-public
		uwsgi_conf placement "$PLACEMENT_PORT" /usr/bin/placement-api
		start keystone env OS_KEYSTONE_CONFIG_DIR="$STATE/etc/keystone" /usr/bin/uwsgi --ini "$STATE/etc/keystone-uwsgi.ini"
		start placement env OS_PLACEMENT_CONFIG_DIR="$STATE/etc/placement" /usr/bin/uwsgi --ini "$STATE/etc/placement-uwsgi.ini"
		start glance env PYTHONPATH="$HERE/py" "$PY" -c 'import sys; sys.argv[0] = "glance-api"; from glance.cmd.api import main; sys.exit(main())' \
			--config-file "$STATE/etc/glance-api.conf"
		start neutron env PYTHONPATH="$HERE/py" "$PY" -m kerbside_devcloud.neutron_server --config-file "$STATE/etc/neutron.conf"
		local N=(--config-file "$STATE/etc/nova.conf")
		start nova-api "$PY" -c 'import sys; sys.argv[0] = "nova-api"; from nova.cmd.api import main; sys.exit(main())' "${N[@]}"
		wait_for keystone "Keystone answering" http_up "$AUTH_URL"
		# The catalog must name placement before the scheduler, conductor
		# and compute look for it (they exit when it does not).
		seed catalog
		start nova-conductor "$PY" -c 'import sys; sys.argv[0] = "nova-conductor"; from nova.cmd.conductor import main; sys.exit(main())' "${N[@]}"
		start nova-scheduler "$PY" -c 'import sys; sys.argv[0] = "nova-scheduler"; from nova.cmd.scheduler import main; sys.exit(main())' "${N[@]}"
		start nova-compute "$PY" -c 'import sys; sys.argv[0] = "nova-compute"; from nova.cmd.compute import main; sys.exit(main())' "${N[@]}"
		wait_for glance "Glance answering" http_up "http://127.0.0.1:$GLANCE_PORT/"
		wait_for placement "Placement answering" http_up "http://127.0.0.1:$PLACEMENT_PORT/"
		wait_for neutron "Neutron answering" http_up "http://127.0.0.1:$NEUTRON_PORT/"
		wait_for nova-api "Nova answering" http_up "http://127.0.0.1:$NOVA_PORT/"
		t1=$(now)
		log "services answering at $(elapsed "$t0") s"
		wait_for nova-compute "the compute host in the cell" discover_host
		log "compute host discovered at $(elapsed "$t0") s"
		for s in "${SERVICES[@]}"; do
			alive "$s" || {
				tail -n 30 "$STATE/log/$s.log" >&2 || true
				die "$s exited during start (log: $STATE/log/$s.log)"
			}
		done
	else
		log "already running (state in $STATE)"
		t1=$(now)
	fi
	local ts
	ts=$(now)
	seed all
	write_outputs "$out"
	{
		echo "start_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
		echo "seed_seconds=$(elapsed "$ts")"
		echo "up_seconds=$(elapsed "$t0")"
		echo "rss_mib=$(rss_mib)"
	} | tee "$out/devcloud-times.env"
}

discover_host() {
	PYTHONPATH="$HERE/py" "$PY" -c 'import sys; sys.argv[0] = "nova-manage"; from nova.cmd.manage import main; sys.exit(main())' \
		--config-file "$STATE/etc/nova.conf" cell_v2 discover_hosts --verbose 2>&1 | tee -a "$STATE/log/nova-manage.log" |
		grep -q "Found 1 unmapped computes\|Found 0 unmapped computes" &&
		SQL -N -e "select count(*) from nova_api.host_mappings where host='devcloud'" | grep -qx 1
}

seed() {
	DEVCLOUD_AUTH_URL="$AUTH_URL" DEVCLOUD_STATE="$STATE" DEVCLOUD_ADMIN_PASSWORD="$(secret_of admin)" \
		DEVCLOUD_USER_PASSWORD="$(secret_of user)" DEVCLOUD_PORT_BASE="$BASE" \
		PYTHONPATH="$HERE/py" "$PY" -m kerbside_devcloud.seed "$1" 2>>"$STATE/log/seed.log" ||
		die "seeding ($1) failed (log: $STATE/log/seed.log)"
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
# The kerbside-latency dev cloud ($STATE). Source it: . $1
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
# The kerbside-latency dev cloud ($STATE): OS_CLOUD=devcloud (member),
# devcloud-admin, devcloud-noquota (a project whose instance quota is 0).
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
DEVCLOUD_PORT_BASE=$BASE
DEVCLOUD_IMAGE=uefi-latency-guest
DEVCLOUD_FLAVOR=vdi-tiny
DEVCLOUD_FLAVOR_TOO_BIG=devcloud-too-big
DEVCLOUD_NETWORK=public1
DEVCLOUD_IMAGE_FILE=$STATE/glance/seed-image.qcow2
EOF
	)
	log "wrote $out/openrc, $out/admin-openrc, $out/noquota-openrc, $out/clouds.yaml, $out/devcloud.env"
}

# rss_mib: the resident memory of every process of the cloud, in MiB.
rss_mib() {
	local s f pid pids=()
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

cmd_status() {
	local s pid
	for s in "${SERVICES[@]}"; do
		if pid=$(pid_of "$s"); then
			printf '%-15s running (pid %s)\n' "$s" "$pid"
		else
			printf '%-15s stopped\n' "$s"
		fi
	done
	echo "ports: keystone $KEYSTONE_PORT, glance $GLANCE_PORT, placement $PLACEMENT_PORT, nova $NOVA_PORT, neutron $NEUTRON_PORT, amqp $RABBIT_PORT"
	echo "rss_mib=$(rss_mib)"
}

cmd_down() {
	local i s
	for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
		s=${SERVICES[i]}
		if [[ -s $(pidfile "$s") ]]; then
			log "stopping $s"
			stop "$s"
		fi
	done
	if [[ -d $STATE ]]; then
		case $STATE in
		/ | /var | /var/tmp | /tmp | "$HOME") die "refusing to delete DEVCLOUD_STATE=$STATE" ;;
		esac
		rm -rf "$STATE"
		log "removed $STATE"
	fi
}

case ${1:-} in
install) cmd_install ;;
up) cmd_up "${2:-}" ;;
down) cmd_down ;;
status) cmd_status ;;
*)
	echo "usage: $0 install | up OUTDIR | down | status" >&2
	exit 2
	;;
esac
