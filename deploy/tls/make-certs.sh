#!/bin/sh
# The TLS files of compose.yaml (docs/tls.md, "compose.yaml"), made by its one-shot `certs` service before anything
# that uses them starts, into deploy/tls/certs/ (TLS_DIR). A file already there is kept, so this runs on every `up`
# and changes nothing after the first; to use your organisation's CA instead, put its files there first, under the
# same names:
#   ca.pem                     the (root) CA of the two certificates below: devices and browsers trust it
#   mosquitto.crt, .key        MQTT over TLS (8883); names: mosquitto, localhost, 127.0.0.1 and TLS_NAMES
#   api.crt, .key              the API and the duty console over HTTPS (8443); the same names, with api for mosquitto
# (a certificate file may hold its intermediate CAs after it).
# The CA's own key stays in private/ca.key (mode 600, root), read by nothing but this script.
#
# TLS_NAMES: comma-separated host names and IP addresses that devices and officers use to reach this host
# (e.g. TLS_NAMES=smartcity.example.org,203.0.113.10); a name missing there fails every client's host name check.
# Adding one later: delete the two certificates (not ca.pem) and run `docker compose up` again.
set -eu

dir=${TLS_DIR:-/tls}
names=${TLS_NAMES:-}
days=${TLS_DAYS:-825}
mosquitto_uid=${MOSQUITTO_UID:-1883}  # eclipse-mosquitto reads its key after dropping to this user
smartcity_uid=${SMARTCITY_UID:-10001}  # the SmartCity image's user (Dockerfile)

umask 077
mkdir -p "$dir/private"
cd "$dir"

# subjectAltName: the service's compose name, the names its own health check uses, then TLS_NAMES.
alt_names() {
  out="DNS:$1,DNS:localhost,IP:127.0.0.1"
  for name in $(printf '%s' "$names" | tr ',' ' '); do
    case "$name" in
      *:*) out="$out,IP:$name" ;;  # IPv6
      *[!0-9.]*) out="$out,DNS:$name" ;;
      *) out="$out,IP:$name" ;;
    esac
  done
  printf '%s' "$out"
}

if [ ! -f ca.pem ]; then
  openssl req -x509 -new -nodes -newkey rsa:3072 -sha256 -days "$days" \
    -keyout private/ca.key -out ca.pem -subj "/CN=SmartCity CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  echo "certs: made the CA ca.pem"
fi

# issue NAME OWNER: NAME.crt and NAME.key for the service NAME, the key readable by OWNER only.
issue() {
  if [ -f "$1.crt" ] && [ -f "$1.key" ]; then
    echo "certs: $1.crt exists, kept"
    return
  fi
  if [ ! -f private/ca.key ]; then
    echo "certs: $1.crt is missing and private/ca.key is not here to sign it: add $1.crt and $1.key" >&2
    exit 1
  fi
  {
    echo "subjectAltName=$(alt_names "$1")"
    echo "extendedKeyUsage=serverAuth"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "subjectKeyIdentifier=hash"
    echo "authorityKeyIdentifier=keyid,issuer"
  } > "private/$1.ext"
  openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout "$1.key" -out "private/$1.csr" -subj "/CN=$1"
  openssl x509 -req -in "private/$1.csr" -CA ca.pem -CAkey private/ca.key -CAcreateserial -CAserial private/ca.srl \
    -out "$1.crt" -days "$days" -sha256 -extfile "private/$1.ext"
  rm -f "private/$1.csr" "private/$1.ext"
  chmod 600 "$1.key"
  if [ "$(id -u)" -eq 0 ]; then chown "$2" "$1.key"; fi
  echo "certs: made $1.crt for $(alt_names "$1")"
}

issue mosquitto "$mosquitto_uid"
issue api "$smartcity_uid"
chmod 644 ca.pem mosquitto.crt api.crt
chmod 755 .
# A certificate file may carry its intermediate CAs after it: they are offered as untrusted, ca.pem is the root.
for cert in mosquitto.crt api.crt; do openssl verify -CAfile ca.pem -untrusted "$cert" "$cert"; done
