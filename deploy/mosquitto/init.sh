#!/bin/sh
# compose.yaml's mosquitto-init: create Mosquitto's dynamic-security file, once, with one account: the plugin's
# administrator `smartcity-control`, which may only send plugin commands (and read $SYS). `smartcity mqtt-accounts`
# logs in with it to make every other account, the operator `admin` included.
#
# Why not make `admin` the plugin's administrator: changing a client's password or roles makes the plugin
# disconnect that client, so an account cannot keep itself up to date; a client that re-sends the unacknowledged
# command on reconnect is disconnected again, for ever. The administrator is therefore never one of the accounts
# mqtt-accounts manages.
#
# An existing file is left alone: it holds every account made since (services, departments, devices), and
# `mosquitto_ctrl dynsec init` would refuse to overwrite it anyway. So SMARTCITY_MQTT_CONTROL_PASSWORD counts only
# on the first start; to change it later, change it in the plugin first
#   docker compose exec mosquitto mosquitto_ctrl -u smartcity-control -P OLD dynsec setClientPassword \
#     smartcity-control NEW
# and then in the environment (the broker's health check and mqtt-accounts log in with it).
#
# Environment: MQTT_CONTROL_PASSWORD (required); DYNSEC_FILE (default /mosquitto/data/dynamic-security.json, the
# path mosquitto.conf's plugin_opt_config_file names; tests point it into a temporary directory).
set -eu

file="${DYNSEC_FILE:-/mosquitto/data/dynamic-security.json}"
: "${MQTT_CONTROL_PASSWORD:?set MQTT_CONTROL_PASSWORD}"

if [ -s "$file" ]; then
  echo "mosquitto-init: $file exists; keeping its accounts"
  exit 0
fi

umask 077  # the file holds password hashes
mkdir -p "$(dirname "$file")"
mosquitto_ctrl dynsec init "$file" smartcity-control "$MQTT_CONTROL_PASSWORD" >/dev/null
chmod 600 "$file"
# The broker drops root for the image's `mosquitto` user and rewrites this file after every plugin command.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
  chown mosquitto:mosquitto "$file"
fi
echo "mosquitto-init: created $file with the plugin administrator smartcity-control"
