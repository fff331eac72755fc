#!/usr/bin/env bash
# Fetch Apache Kafka's jars (and a log4j2 binding) from Maven Central into a cache directory and print its path.
#
#   deploy/kafka/fetch.sh            -> ${XDG_CACHE_HOME:-$HOME/.cache}/mash-broker/kafka-<version>/libs
#   MASH_KAFKA_LIBS=/some/dir fetch.sh  -> /some/dir
#
# Idempotent: a completed cache holds a marker file (.complete, naming the pom's checksum) and is reused at once.
# A half-finished copy (interrupted, failed) has no marker and is fetched again. The whole fetch is bounded by
# MASH_KAFKA_FETCH_TIMEOUT seconds (default 600). Needs java and mvn on PATH. Exit codes: 0 ok, 3 a tool missing,
# 4 the fetch failed or timed out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pom="$here/pom.xml"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom" | head -1)
[ -n "$version" ] || { echo "fetch.sh: no <kafka.version> in $pom" >&2; exit 4; }
libs=${MASH_KAFKA_LIBS:-${XDG_CACHE_HOME:-$HOME/.cache}/mash-broker/kafka-$version/libs}
sum=$(sha256sum "$pom" | cut -c1-16)
marker="$libs/.complete"

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$sum" ]; then
  echo "$libs"
  exit 0
fi

for tool in java mvn; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fetch.sh: needs '$tool' on PATH (Java 17+ and Maven 3)" >&2; exit 3; }
done

limit=${MASH_KAFKA_FETCH_TIMEOUT:-600}
mkdir -p "$(dirname "$libs")"
# One fetch at a time per cache (parallel test sessions): wait for the other, then reuse what it made.
exec 9>"$(dirname "$libs")/.fetch.lock"
flock -w "$limit" 9 || { echo "fetch.sh: another fetch held $(dirname "$libs")/.fetch.lock for ${limit}s" >&2; exit 4; }
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$sum" ]; then
  echo "$libs"
  exit 0
fi
tmp=$(mktemp -d "$(dirname "$libs")/.libs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch.sh: fetching Apache Kafka $version jars into $libs (at most ${limit}s)" >&2
if ! timeout --kill-after=10 "$limit" mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.log" 2>&1; then
  echo "fetch.sh: mvn dependency:copy-dependencies failed or timed out after ${limit}s; its output:" >&2
  tail -n 40 "$tmp.log" >&2 || true
  rm -f "$tmp.log"
  exit 4
fi
rm -f "$tmp.log"
ls "$tmp"/kafka_2.13-"$version".jar >/dev/null 2>&1 || { echo "fetch.sh: kafka_2.13-$version.jar missing after fetch" >&2; exit 4; }
echo "$sum" >"$tmp/.complete"
# Swap the finished directory in whole, so a reader never sees a half-filled cache.
rm -rf "$libs"
mv "$tmp" "$libs"
trap - EXIT
echo "$libs"
