#!/bin/sh
# Entry point of the broker image: hashes the gateway's password into Mosquitto's password
# file, then runs Mosquitto; the plugin reads the token secret from its file itself. Both
# secrets are files (compose secrets), never in the image or the environment:
#   /run/secrets/rtm_token_secret      the gateway's auth.token_secret (at least 32 bytes)
#   /run/secrets/rtm_gateway_password  the gateway's broker.password (MQTT user rtm-gateway)
# RTM_SECRETS_DIR, RTM_BROKER_STATE_DIR and RTM_BROKER_CONFIG move those paths (for tests).
set -eu
secrets=${RTM_SECRETS_DIR:-/run/secrets}
state=${RTM_BROKER_STATE_DIR:-/var/lib/rtm-broker}
for name in rtm_token_secret rtm_gateway_password; do
  if [ ! -r "$secrets/$name" ]; then
    echo "rtm-broker: $secrets/$name is missing or unreadable (a secret: see docker/compose.yaml)" >&2
    exit 1
  fi
done
umask 077
# `mosquitto_passwd -U` hashes a "user:password" file in place: the password is in no argv.
# $(cat) drops trailing newlines, as the gateway does for broker.password_file.
printf 'rtm-gateway:%s\n' "$(cat "$secrets/rtm_gateway_password")" >"$state/passwd"
mosquitto_passwd -U "$state/passwd"
exec mosquitto -c "${RTM_BROKER_CONFIG:-/etc/mosquitto/rtm/mosquitto.conf}"
