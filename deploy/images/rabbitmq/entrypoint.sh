#!/bin/bash
# Entry point of the coderm-rabbitmq image: write the server's configuration (logs to
# the console; the user RABBITMQ_DEFAULT_USER with password RABBITMQ_DEFAULT_PASS, an
# administrator with every permission on the vhost RABBITMQ_DEFAULT_VHOST, which the
# server creates when its database is new, as the official image does), then run the
# server in the foreground as user rabbitmq. Its database is /var/lib/rabbitmq, named
# after the host name (compose gives the container a fixed one).
set -euo pipefail

: "${RABBITMQ_DEFAULT_PASS:?RABBITMQ_DEFAULT_PASS is required}"
user="${RABBITMQ_DEFAULT_USER:-guest}"
vhost="${RABBITMQ_DEFAULT_VHOST:-/}"
for value in "$user" "$RABBITMQ_DEFAULT_PASS" "$vhost"; do
    [[ "$value" != *[[:space:]]* ]] || {
        echo "coderm-rabbitmq: user, password and vhost may not hold white space" >&2
        exit 1
    }
done
cd /

conf=/etc/rabbitmq/rabbitmq.conf
umask 027
cat >"$conf" <<CONF
loopback_users = none
listeners.tcp.default = 5672
management.tcp.port = 15672
log.console = true
log.console.level = info
log.file = false
default_user = $user
default_pass = $RABBITMQ_DEFAULT_PASS
default_vhost = $vhost
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
CONF
chown root:rabbitmq "$conf"
chmod 0640 "$conf"
umask 022

mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq

exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
    env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server
