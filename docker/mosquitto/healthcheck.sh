#!/bin/sh
# Health probe of the broker image: the broker accepts the gateway's login and delivers a
# message to it (the retained $SYS/broker/uptime, which the ACL lets rtm-gateway read).
# RTM_SECRETS_DIR and RTM_BROKER_PORT move the secret and the port (for tests).
exec mosquitto_sub -h 127.0.0.1 -p "${RTM_BROKER_PORT:-1883}" -i "rtm-healthcheck-$$" -u rtm-gateway \
  -P "$(cat "${RTM_SECRETS_DIR:-/run/secrets}/rtm_gateway_password")" \
  -t '$SYS/broker/uptime' -C 1 -W 3 >/dev/null
