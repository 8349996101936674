#!/bin/sh
# reload.sh CONF: asks nginx to load CONF again, after autopilot re-rendered it.
#
# nginx may still be starting when the first change arrives: if it has read
# its configuration before autopilot rewrote it, the new file must still
# reach it. nginx writes its pid file once it has read its configuration and
# can take signals, so wait for that file (at most 5 s) and then reload.
conf="$1"
pidfile="$(sed -n 's/^pid \(.*\);$/\1/p' "$conf")"
tries=0
until [ -s "$pidfile" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 50 ]; then
        echo "nginx is not running (no $pidfile): nothing to reload" >&2
        exit 1
    fi
    sleep 0.1
done
exec nginx -c "$conf" -s reload
