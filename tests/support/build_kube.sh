#!/usr/bin/env bash
# Builds the real Kubernetes test servers ONCE from the Go module proxy, outside the checkout:
#   kube-apiserver and kubectl (k8s.io/kubernetes), and etcd (go.etcd.io/etcd/server/v3),
# into ${PARTNERCTL_KUBE_CACHE:-~/.cache/partnerctl/kube}/<k8s version>/bin/, and prints that folder
# as its last line. A second run finds the stamp and returns at once. `make kube` runs it.
#
# k8s.io/kubernetes cannot be `go install`ed: it replaces its staging modules (k8s.io/api,
# k8s.io/apimachinery, ...) with ./staging paths. Our small build modules in tests/support/kubebuild/
# pin each of them to the matching v0.x release instead, and pin every other dependency (go.sum), so
# the build is the same on every machine. etcd has a build module of its own: Kubernetes would pull
# its etcd server up to another minor release.
#
# Environment:
#   PARTNERCTL_KUBE_CACHE        the cache root (default ~/.cache/partnerctl/kube)
#   PARTNERCTL_KUBE_CLEAN=1      delete the Go module and build caches afterwards (about 4 GB -> 200 MB;
#                                a later rebuild downloads everything again)
set -euo pipefail

K8S_VERSION=v1.37.2   # the pins; the build modules in tests/support/kubebuild/ must agree
ETCD_VERSION=v3.6.16
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="${PARTNERCTL_KUBE_CACHE:-$HOME/.cache/partnerctl/kube}"
BIN="$ROOT/$K8S_VERSION/bin"
STAMP="$BIN/.stamp"

if ! command -v go >/dev/null 2>&1; then
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "k8s=$K8S_VERSION etcd=$ETCD_VERSION "* ]]; then
    echo "$BIN"; exit 0   # built earlier, by a Go since removed: still good
  fi
  echo "build-kube: Go is not installed; the real Kubernetes API server tests will be skipped" >&2
  exit 3
fi
WANT="k8s=$K8S_VERSION etcd=$ETCD_VERSION go=$(go env GOVERSION)"

built() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$BIN/kube-apiserver" && -x "$BIN/kubectl" && -x "$BIN/etcd" ]]
}

if built; then echo "$BIN"; exit 0; fi

mkdir -p "$ROOT"
exec 9>"$ROOT/.build.lock"   # two sessions building at once: the second waits, then finds the stamp
flock 9
if built; then echo "$BIN"; exit 0; fi

START=$(date +%s)
export GOMODCACHE="$ROOT/gomod" GOCACHE="$ROOT/gocache"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
echo "build-kube: building Kubernetes $K8S_VERSION and etcd $ETCD_VERSION with $(go env GOVERSION) into $BIN" >&2
echo "build-kube: the first build takes about 8 minutes on 2 cores and 4 GB of disk under $ROOT" >&2

rm -rf "$BIN.tmp" && mkdir -p "$BIN.tmp"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$HERE/kubebuild/k8s" "$WORK/k8s"
cp -r "$HERE/kubebuild/etcd" "$WORK/etcd"

version_flags=""
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  version_flags+=" -X $package.gitVersion=$K8S_VERSION -X $package.gitMajor=1 -X $package.gitMinor=$minor"
  version_flags+=" -X $package.gitTreeState=clean"
done

(cd "$WORK/k8s" && go build -trimpath -ldflags "-s -w$version_flags" -o "$BIN.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl >&2)
(cd "$WORK/etcd" && go build -trimpath -ldflags "-s -w" -o "$BIN.tmp/etcd" go.etcd.io/etcd/server/v3 >&2)

"$BIN.tmp/kube-apiserver" --version >&2
"$BIN.tmp/etcd" --version >&2
echo "$WANT" > "$BIN.tmp/.stamp"
rm -rf "$BIN" && mv "$BIN.tmp" "$BIN"

if [[ "${PARTNERCTL_KUBE_CLEAN:-0}" == 1 ]]; then
  go clean -modcache >&2 || true
  rm -rf "$GOCACHE"
fi
echo "build-kube: built in $(( $(date +%s) - START )) s; disk: $(du -sh "$ROOT" | cut -f1)" >&2
echo "$BIN"
