#!/usr/bin/env bash
# Peak memory of `appupdate update` when the mirror serves a crafted delta in place of the
# real one, beside the same update from an honest mirror (docs/benchmarks.md, "Hostile input").
#
# Usage: cargo build --release --workspace && bash bench/hostile-update.sh [MIB]
# Needs /usr/bin/time (Debian package `time`) and python3. Runs on 127.0.0.1 in a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
mib="${1:-64}"
bin="$PWD/target/release"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
export PATH="$bin:$PATH"
cases=(honest tests/adversarial/*.bsdiff tests/adversarial/*.bsdl tests/adversarial/*.zst-patch)

appupdate keys generate --out "$work/keys" >/dev/null
appupdate repo init --repo "$work/repo" --keys "$work/keys" >/dev/null
mkdir -p "$work/src/bin"
printf '#!/bin/sh\necho "app $APPSTART_VERSION"\n' >"$work/src/bin/app"
chmod +x "$work/src/bin/app"
head -c "$((mib << 20))" /dev/urandom >"$work/src/data.bin"
publish() {
    appupdate publish --repo "$work/repo" --keys "$work/keys" --app hostile --version "$1" \
        --exe bin/app --platform any "$work/src" >/dev/null
}
publish 1.0.0
appupdate serve --repo "$work/repo" --listen 127.0.0.1:0 >"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q http "$work/serve.log" && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$work/serve.log" | head -1)"
url="${url%/}"
# One client on 1.0.0 per case.
for i in "${!cases[@]}"; do
    appupdate install --url "$url" --trusted-root "$work/repo/metadata/1.root.json" \
        --app hostile --dir "$work/client-$i" --launcher "$bin/appstart" >/dev/null
done
# 2.0.0: a few small edits, so a delta pays.
for at in 1000 5000000 30000000; do
    printf 'edited-%s' "$at" | dd of="$work/src/data.bin" bs=1 seek="$at" conv=notrunc status=none
done
publish 2.0.0
delta="$(find "$work/repo/deltas" -type f | head -1)"
cp "$delta" "$work/good-delta"
size="$(stat -c %s "$delta")"
echo "data.bin: $mib MiB; the real delta: $(basename "$delta" | sed 's/.*\.//'), $size bytes"
echo
echo "| mirror serves as the delta | update result | peak RSS | time |"
echo "|---|---|---|---|"
summary='import json, sys
r = json.load(open(sys.argv[1]))
p = r["plan"]
print("to %s: %d delta, %d blob, %d bytes" % (r["to"], p["delta_files"], p["blob_files"], r["bytes_downloaded"]))'
pad='import sys
d = open(sys.argv[1], "rb").read()
n = int(sys.argv[2])
open(sys.argv[3], "wb").write((d * (n // len(d) + 1))[:n])'
for i in "${!cases[@]}"; do
    case="${cases[$i]}"
    if [ "$case" = honest ]; then
        cp "$work/good-delta" "$delta"
    else
        # The crafted bytes repeated or cut to the signed length: only the hash tells them apart.
        python3 -c "$pad" "$case" "$size" "$delta"
    fi
    /usr/bin/time -f "%M %e" -o "$work/time" \
        appupdate update --dir "$work/client-$i" --json >"$work/out" 2>"$work/err" || true
    read -r kib seconds <"$work/time"
    result="$(python3 -c "$summary" "$work/out" 2>/dev/null || echo "failed: $(tail -1 "$work/err")")"
    printf '| %s | %s | %s MiB | %s s |\n' "$(basename "$case")" "$result" "$((kib / 1024))" "$seconds"
done
cp "$work/good-delta" "$delta"
