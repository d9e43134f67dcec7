#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/packages.txt that are missing, and those of
# scripts/packages-brokers.txt (what only the tests need: other brokers, a browser) unless
# RTM_NO_TEST_BROKERS=1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lists=("$here/packages.txt")
if [[ ${RTM_NO_TEST_BROKERS:-0} != 1 ]]; then lists+=("$here/packages-brokers.txt"); fi
mapfile -t wanted < <(cat "${lists[@]}" | grep -vE '^\s*(#|$)')
# What is installed, and the virtual packages that provides: a machine with NodeSource's
# nodejs (it provides npm and conflicts with Debian's) has npm, and must not be asked for
# Debian's.
declare -A have=()
while IFS='|' read -r status pkg provides; do
  [[ $status == ii* ]] || continue
  have[$pkg]=1
  IFS=',' read -ra virtual <<<"$provides"
  for v in "${virtual[@]}"; do
    v=${v# }
    have[${v%% *}]=1
  done
done < <(dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\n')
missing=()
for pkg in "${wanted[@]}"; do
  if [[ -z ${have[$pkg]:-} ]]; then missing+=("$pkg"); fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "installing: ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# A broker installed for the tests must not start as a system service: policy-rc.d refuses
# service starts during the install (kept if one was there), and systemd's unit is disabled.
guard=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
  guard=1
fi
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [[ -n $guard ]]; then "${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d; fi
for service in rabbitmq-server redis-server; do
  if [[ " ${missing[*]} " == *" $service "* && -d /run/systemd/system ]]; then
    "${sudo_cmd[@]}" systemctl disable --now "$service.service" >/dev/null 2>&1 || true
  fi
done
