#!/usr/bin/env bash
# Build yield-ensemble's container image with `bentoml containerize`, on a machine
# with no Docker engine and no reachable registry (podman, a debootstrap base image).
#
#   deploy/build-image.sh [IMAGE_TAG]        (default: yield-ensemble:<bento version>)
#
# Uses the BentoML store in $BENTOML_HOME (default ~/bentoml): the latest trained
# models go into the image. Prints the image size and the size of each layer.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENTOML="${BENTOML:-$ROOT/.venv/bin/bentoml}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# No dot in the path: BentoML refuses a Dockerfile template under a hidden directory.
STATE="${YE_IMAGE_STATE:-/var/tmp/yield-ensemble-image}"
BASE_IMAGE="docker.io/library/python:3.11-slim"   # the name BentoML's Dockerfile uses
MIRROR="${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$STATE"

# 1. podman, buildah, runc, debootstrap.
missing=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap >/dev/null
fi

# 2. runc (crun fails on this hybrid cgroup layout) and the rlimits the machine allows.
nproc=$(ulimit -Hu); [[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
nofile=$(ulimit -Hn); [[ "$nofile" == unlimited ]] && nofile=1048576
cat >"$STATE/containers.conf" <<CONF
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
CONF
export CONTAINERS_CONF="$STATE/containers.conf"

# 3. A Debian bookworm base with Python 3.11, built locally: no registry to pull from.
if ! podman image exists "$BASE_IMAGE"; then
  echo "building $BASE_IMAGE with debootstrap from $MIRROR" >&2
  rootfs="$STATE/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >"$STATE/debootstrap.log"
  # HTTPS to PyPI may pass a re-signing proxy that only this host's extra CAs vouch for.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  chroot "$rootfs" update-ca-certificates >/dev/null
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/{doc,man,info,locale}/*
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

# 4. The bento, and OCI labels from the model store's metadata.
cd "$ROOT"
"$BENTOML" build --output tag >"$STATE/bento.tag"
bento=$(sed -n 's/^__tag__://p' "$STATE/bento.tag" | tail -1)
bento=${bento:-$(tail -1 "$STATE/bento.tag")}
tag="${1:-yield-ensemble:${bento#*:}}"
# Captured first, so a failure here stops the script (set -e) instead of leaving labels out.
label_text=$("$PYTHON" - "$bento" <<'PY'
import subprocess, sys, time

import bentoml

from ensemble.settings import get_settings
from models.base import resolve_version, stored_model
from models.families import families

bento = bentoml.get(sys.argv[1])
settings = get_settings()
champion = resolve_version(settings.model_version)
candidate = resolve_version(settings.candidate_version) if settings.candidate_version else None
revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
print("org.opencontainers.image.title=yield-ensemble")
print("org.opencontainers.image.description=Pass/fail prediction for dies from parametric test data: an ensemble of " + " + ".join(f.name for f in families()))
print(f"org.opencontainers.image.version={bento.tag.version}")
print(f"org.opencontainers.image.created={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
print("org.opencontainers.image.licenses=Apache-2.0")
if revision:
    print(f"org.opencontainers.image.revision={revision}")
print(f"io.yield-ensemble.champion.version={champion}")
if candidate:
    print(f"io.yield-ensemble.candidate.version={candidate}")
    print(f"io.yield-ensemble.candidate.share={settings.candidate_share:g}")
for family in families():
    member = family.name
    model = stored_model(member, champion)
    meta = model.info.metadata
    print(f"io.yield-ensemble.model.{member}.version={model.tag}")
    if candidate:
        print(f"io.yield-ensemble.model.{member}.candidate-version={stored_model(member, candidate).tag}")
    print(f"io.yield-ensemble.model.{member}.heldout-accuracy={meta['metrics']['accuracy']:.4f}")
    print(f"io.yield-ensemble.model.{member}.runtime={','.join(meta.get('runtimes', {}))}")
print(f"io.yield-ensemble.ensemble.heldout-accuracy={meta['ensemble_metrics']['accuracy']['value']:.4f}")
print(f"io.yield-ensemble.ensemble.combiner={meta['combiner']}")
PY
)
labels=()
while IFS= read -r label; do labels+=(--label "$label"); done <<<"$label_text"

# 5. Build (docker format: the OCI format drops HEALTHCHECK). BentoML refuses a Dockerfile template outside the working directory,
# and its build context is a temporary directory: keep both under $STATE.
mkdir -p "$STATE/context"
(cd "$STATE/context" && TMPDIR="$STATE/context" "$BENTOML" containerize "$bento" \
  --backend podman --opt network=host --opt format=docker -t "$tag" "${labels[@]}")

echo
echo "image $tag: $(podman image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
echo "layers (largest first):"
podman history --format json "$tag" | "$PYTHON" -c '
import json, sys
for layer in sorted(json.load(sys.stdin), key=lambda layer: -layer["size"])[:6]:
    print("%9.1f MB  %s" % (layer["size"] / 1e6, layer["CreatedBy"][:90]))'

echo "$tag" >"$STATE/last-image"
