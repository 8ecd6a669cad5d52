#!/usr/bin/env bash
# Builds the "local artifacts" the offline test bed and sandbox deploy instead of the
# official downloads (which this workplace cannot reach):
#   - Apache Kafka (KRaft) as a release-shaped tarball assembled from Maven Central jars;
#   - MinIO built from source through the Go module proxy.
# Results are cached outside the repo in $GG_CACHE (default /var/cache/gourmetgram), so
# reruns take seconds. Prints the artifact paths as KEY=VALUE lines on stdout.
set -Eeuo pipefail
trap 'echo "${0##*/}: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${GG_CACHE:-/var/cache/gourmetgram}
art="$cache/artifacts"
mkdir -p "$art"
log() { printf '[artifacts] %s\n' "$*" >&2; }

kafka_tgz="$art/kafka_${KAFKA_SCALA_VERSION}-${KAFKA_VERSION}.maven.tgz"
if [[ ! -s $kafka_tgz ]]; then
  command -v mvn >/dev/null || { log "installing maven"; apt-get install -y -qq maven >/dev/null; }
  t0=$SECONDS
  stage=$(mktemp -d)
  top="$stage/kafka_${KAFKA_SCALA_VERSION}-${KAFKA_VERSION}"
  mkdir -p "$top/libs" "$top/config"
  log "resolving Kafka $KAFKA_VERSION jars from Maven Central"
  mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$top/libs" >&2
  cp "$here/kafka/log4j2.properties" "$top/config/"
  tar -C "$stage" -czf "$kafka_tgz.tmp" "$(basename "$top")"
  mv "$kafka_tgz.tmp" "$kafka_tgz"
  rm -rf "$stage"
  log "kafka tarball ready in $((SECONDS - t0)) s"
fi

minio_bin="$art/minio-${MINIO_MODULE_VERSION}"
if [[ ! -x $minio_bin ]]; then
  # MinIO needs Go >= 1.24; with an older go, GOTOOLCHAIN=auto fetches one through the module proxy.
  command -v go >/dev/null || { log "Go is required to build MinIO (install Go >= 1.21)"; exit 1; }
  t0=$SECONDS
  gobin=$(mktemp -d)
  log "building MinIO $MINIO_MODULE_VERSION from source (go module proxy); takes a few minutes cold"
  GOBIN="$gobin" GOTOOLCHAIN=${GOTOOLCHAIN:-auto} CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install "github.com/minio/minio@${MINIO_MODULE_VERSION}" >&2
  mv "$gobin/minio" "$minio_bin.tmp" && mv "$minio_bin.tmp" "$minio_bin"
  rm -rf "$gobin"
  log "minio built in $((SECONDS - t0)) s"
fi

echo "GG_KAFKA_TARBALL=$kafka_tgz"
echo "GG_MINIO_BINARY=$minio_bin"
