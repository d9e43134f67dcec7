#!/bin/sh
# Entry point of the broker image: writes the token secret and the gateway's password entry
# from the environment (so that neither is baked into the image), then runs Mosquitto.
#   RTM_TOKEN_SECRET      the gateway's auth.token_secret (at least 32 bytes)
#   RTM_GATEWAY_PASSWORD  the gateway's broker.password (user rtm-gateway)
set -eu
: "${RTM_TOKEN_SECRET:?set RTM_TOKEN_SECRET to the gateway's auth.token_secret}"
: "${RTM_GATEWAY_PASSWORD:?set RTM_GATEWAY_PASSWORD to the gateway's broker.password}"
umask 077
state=/var/lib/rtm-broker
printf '%s' "$RTM_TOKEN_SECRET" > "$state/token_secret"
mosquitto_passwd -b -c "$state/passwd" rtm-gateway "$RTM_GATEWAY_PASSWORD"
exec mosquitto -c /etc/mosquitto/rtm/mosquitto.conf
