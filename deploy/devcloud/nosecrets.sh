#!/usr/bin/env bash
# nosecrets.sh DIR...: fail when any file under DIR (the cloud lane's
# results, the tests' whole terminal output among them) holds one of the
# dev cloud's passwords (DEVCLOUD_STATE/secrets/*) or a Nova console token
# in a URL (token=<uuid>). The secrets themselves are never printed: a
# hit names the file and which secret.
set -euo pipefail
STATE="${DEVCLOUD_STATE:-/var/tmp/kerbside-devcloud}"
(($#)) || {
	echo "usage: $0 DIR..." >&2
	exit 2
}
shopt -s nullglob
secrets=("$STATE"/secrets/*)
((${#secrets[@]})) || {
	echo "nosecrets: no secrets in $STATE/secrets to look for: is the dev cloud up?" >&2
	exit 1
}
bad=0 files=0
while IFS= read -r -d '' f; do
	files=$((files + 1))
	for s in "${secrets[@]}"; do
		if grep -qF -- "$(cat "$s")" "$f"; then
			echo "nosecrets: $f holds the dev cloud's $(basename "$s") password" >&2
			bad=1
		fi
	done
	if grep -qE 'token=[0-9a-f]{8}-[0-9a-f]{4}-' "$f"; then
		echo "nosecrets: $f holds a console token" >&2
		bad=1
	fi
done < <(find "$@" -type f -print0)
((files > 0)) || {
	echo "nosecrets: no files under $*" >&2
	exit 1
}
((bad == 0)) || exit 1
echo "nosecrets: no password or console token in $files files under $*"
