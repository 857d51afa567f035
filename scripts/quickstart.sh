#!/bin/sh
# A first look at the kiosk ledger in a throw-away folder (until `kiosk-agent demo` lands).
set -eu
KA="${KIOSK_AGENT:-kiosk-agent}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '[agent]\ndata_dir = "data"\n' > "$dir/agent.toml"
export KIOSK_AGENT_CONFIG="$dir/agent.toml"
"$KA" init --dev-leases
"$KA" txn new --service ELEC_BILL --amount 1250.50 --mobile 9876543210 --field discom=JVVNL --field k_number=210412345678
"$KA" txn new --service WATER_BILL --amount 310 --field consumer_number=3345678901
"$KA" txn new --service PRINT_LAMINATION --amount 20 --field pages=2 --field job=lamination
"$KA" txn list
"$KA" verify
"$KA" status
