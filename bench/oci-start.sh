#!/usr/bin/env bash
# Container start latency: time from "start" to the first 200 from a busybox httpd, four ways in
# one run (see docs/benchmarks.md):
#
#   runc      `runc run -d` of the very bundle skiff-oci generates for the image (the floor)
#   plugin    skiff-oci's protocol: create + start a container of the pulled image (what an agent
#             asks of the plugin, including the per-container root filesystem)
#   pod-oci   POST a pod with the container to the API of `skiff up`, until the gateway answers
#             200 (scheduling, the agent, the plugin, endpoints and the route included)
#   pod-wasm  the same for the example wasm component, for contrast
#
#   ./bench/oci-start.sh
#   RUNS=50 ./bench/oci-start.sh
#
# Settings (environment): RUNS (20), PORT_BASE (19170: +0 API, +1 gateway, +2 data plane,
# +3 registry, +4 container port), KEEP (0), SKIP_BUILD (0),
# CARGO_TARGET_DIR (default $HOME/.cache/skiff/target). Needs root (runc); installs runc,
# busybox-static and docker-registry from Debian when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-20}
PORT_BASE=${PORT_BASE:-19170}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}
SKIFF=$CARGO_TARGET_DIR/release/skiff
SKIFF_OCI=$CARGO_TARGET_DIR/release/skiff-oci
TIMER=$CARGO_TARGET_DIR/release/oci-start
API=127.0.0.1:$PORT_BASE
GW=127.0.0.1:$((PORT_BASE + 1))
DP=127.0.0.1:$((PORT_BASE + 2))
REG=127.0.0.1:$((PORT_BASE + 3))
CPORT=$((PORT_BASE + 4))

# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh" skiff-oci-bench
# Containers still being stopped when the run ends are removed with the work dir.
remove_containers() {
    runc list 2>/dev/null | awk -v w="$WORK" 'index($4, w) == 1 {print $1}' |
        while read -r id; do runc delete -f "$id" >/dev/null 2>&1 || true; done
    cleanup
}
trap remove_containers EXIT

[[ $(id -u) == 0 ]] || die "runc needs root: run as root"
for tool in runc busybox docker-registry; do
    command -v "$tool" >/dev/null || {
        log "installing runc, busybox-static and docker-registry"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q runc busybox-static docker-registry >/dev/null
        break
    }
done

if [[ $SKIP_BUILD != 1 ]]; then
    log "building skiff, skiff-oci and the timer (release)"
    (cd "$ROOT" && cargo build --release -q -p skiff-cli -p skiff-oci)
    (cd "$ROOT/bench/oci-start" && cargo build --release -q)
fi

# A registry on loopback holding a busybox httpd image built here.
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PID[registry]=$!
wait_for "the registry" curl -sf "http://$REG/v2/"
mkdir -p "$WORK/layer/bin" "$WORK/layer/www"
cp "$(command -v busybox)" "$WORK/layer/bin/busybox"
ln -s busybox "$WORK/layer/bin/sh"
echo "hello from a container" >"$WORK/layer/www/index.html"
tar -C "$WORK/layer" -czf "$WORK/layer.tgz" bin www
ARCH=$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')
printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/bin/busybox"],"Cmd":["sh","-c","exec busybox httpd -f -p $PORT -h /www"]},"rootfs":{"type":"layers","diff_ids":[]}}' \
    "$ARCH" >"$WORK/config.json"
push_blob() { # file → digest
    local digest loc sep
    digest=sha256:$(sha256sum "$1" | cut -d' ' -f1)
    loc=$(curl -si -X POST "http://$REG/v2/bench/site/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
    [[ $loc == http* ]] || loc="http://$REG$loc"
    sep='?'
    [[ $loc == *\?* ]] && sep='&'
    curl -sf -X PUT -H 'content-type: application/octet-stream' --data-binary "@$1" "$loc${sep}digest=$digest" >/dev/null
    echo "$digest"
}
CFG=$(push_blob "$WORK/config.json")
LAYER=$(push_blob "$WORK/layer.tgz")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
    "$CFG" "$(stat -c %s "$WORK/config.json")" "$LAYER" "$(stat -c %s "$WORK/layer.tgz")" >"$WORK/manifest.json"
curl -sf -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$WORK/manifest.json" \
    "http://$REG/v2/bench/site/manifests/v1" >/dev/null
IMAGE=$REG/bench/site:v1

log "starting skiff up with the oci plugin"
RUST_LOG=${RUST_LOG:-info} "$SKIFF" up --plain-http --dir "$WORK/state" --api "$API" --gateway "$GW" --data-plane "$DP" \
    --runtime-plugin "oci=$SKIFF_OCI" >"$WORK/skiff.log" 2>&1 &
PID[skiff]=$!
wait_for "the API" curl -sf "http://$API/readyz"
TOKEN=$(awk '$1=="token:"{print $2}' "$WORK/state/client.yaml" | tr -d "'\"")
sk() { "$SKIFF" --server "http://$API" --token "$TOKEN" "$@"; }
wait_for "the node to offer oci" bash -c "\"$SKIFF\" --server http://$API --token $TOKEN get node local -o json | grep -q '\"oci\"'"
cat >"$WORK/route.yaml" <<EOF
apiVersion: skiff.dev/v1
kind: Service
metadata:
  name: bench
spec:
  selector:
    bench: "on"
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata:
  name: bench
spec:
  rules:
    - pathPrefix: /
      backends:
        - service: bench
EOF
sk apply -f "$WORK/route.yaml" >/dev/null
WASM=$(sk push "$ROOT/examples/hello-http/hello.wasm" 2>/dev/null | grep -o 'sha256:[0-9a-f]*' | head -1)
OCI_COMPONENT="{\"name\":\"web\",\"oci\":{\"image\":\"$IMAGE\"},\"resources\":{\"memory\":\"32Mi\"}}"
WASM_COMPONENT="{\"name\":\"web\",\"wasm\":{\"digest\":\"$WASM\"},\"resources\":{\"memory\":\"32Mi\"}}"

log "warming up (image pulled, component compiled)"
"$TIMER" pod "$API" "$TOKEN" "$GW" 2 "$OCI_COMPONENT" >/dev/null
"$TIMER" pod "$API" "$TOKEN" "$GW" 2 "$WASM_COMPONENT" >/dev/null

# The bundle skiff-oci generates for the image, for bare runc: created (not started), copied.
SOCK=$WORK/state/agent/plugins/oci.sock
curl -sf --unix-socket "$SOCK" -X POST -H 'content-type: application/json' \
    -d "{\"id\":\"bench-bundle\",\"image\":\"$IMAGE\",\"port\":$CPORT,\"memory\":33554432}" http://plugin/v1/containers >/dev/null
cp -a "$WORK/state/agent/plugins/oci/containers/bench-bundle" "$WORK/bundle"
curl -sf --unix-socket "$SOCK" -X DELETE http://plugin/v1/containers/bench-bundle >/dev/null

log "measuring, $RUNS runs each"
{
    "$TIMER" runc "$WORK/bundle" "$CPORT" "$RUNS"
    "$TIMER" plugin "$SOCK" "$IMAGE" "$CPORT" "$RUNS"
    "$TIMER" pod "$API" "$TOKEN" "$GW" "$RUNS" "$OCI_COMPONENT"
    "$TIMER" pod "$API" "$TOKEN" "$GW" "$RUNS" "$WASM_COMPONENT"
} >"$WORK/results.txt"

printf '%-9s %5s %8s %8s %8s %8s %8s\n' mode runs p50_ms p99_ms mean_ms min_ms max_ms
while read -r mode runs p50 p99 mean min max; do
    printf '%-9s %5s %8s %8s %8s %8s %8s\n' "$mode" "$runs" "$p50" "$p99" "$mean" "$min" "$max"
done <"$WORK/results.txt"
awk '$1=="runc"{r=$3} $1=="plugin"{p=$3} $1=="pod-oci"{o=$3} END{
    printf "overhead over bare runc (p50): plugin %+.1f ms, pod through API and gateway %+.1f ms (goal: +10 ms)\n", p-r, o-r }' "$WORK/results.txt"
