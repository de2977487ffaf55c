#!/usr/bin/env bash
# Fetch BVLC Caffe 1.0 exactly as Debian 11 packages it and unpack it, with Debian's own
# patch series applied, into DEST.
#
# Why apt: the source package is signed by Debian, so apt checks the download against the
# archive's signed index; we never ship or hard-code a copy.  The Debian mirror is read from
# this machine's own apt configuration and used through a private apt configuration (so the
# system's sources are not touched); no host name is written into the repository.
# The tarballs are cached under $DFSEG_CACHE (default ~/.cache/dfseg); the cache only
# speeds repeat runs, a fresh machine downloads.
set -euo pipefail

DEST=${1:?usage: fetch_source.sh DEST}
PKG_VERSION="1.0.0+git20180821.99bd997-8"
ORIG="caffe_1.0.0+git20180821.99bd997.orig.tar.gz"
ORIG_SHA256="e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c"
DEBIAN="caffe_${PKG_VERSION}.debian.tar.xz"
DEBIAN_SHA256="07cf073227494a6b07234e40cb5df91db566616593eef9baafdc4d06ad159f21"
CACHE=${DFSEG_CACHE:-$HOME/.cache/dfseg}
SRC_CACHE="$CACHE/caffe-source"

cached_ok() {
  [ -f "$SRC_CACHE/$ORIG" ] && [ -f "$SRC_CACHE/$DEBIAN" ] &&
    echo "$ORIG_SHA256  $SRC_CACHE/$ORIG" | sha256sum -c --status &&
    echo "$DEBIAN_SHA256  $SRC_CACHE/$DEBIAN" | sha256sum -c --status
}

debian_mirror() {
  # First Debian archive URI of the system's apt sources (deb822 or one-line format).
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
        grep -v -- '-security' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
          awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' |
          grep -v -- '-security' | head -n1 || true)
  fi
  [ -n "$uri" ] || { echo "fetch_source: no Debian mirror found in the system's apt sources" >&2; exit 2; }
  echo "$uri"
}

download() {
  local apt_dir="$CACHE/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts" "$SRC_CACHE"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) bullseye main" \
    > "$apt_dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
              -o "APT::Sandbox::User=root")
  echo "fetch_source: downloading Debian source package caffe=$PKG_VERSION" >&2
  apt-get -qq "${opts[@]}" update
  (cd "$SRC_CACHE" && apt-get -qq "${opts[@]}" source --download-only "caffe=$PKG_VERSION")
  cached_ok || { echo "fetch_source: checksum mismatch for the downloaded caffe source" >&2; exit 2; }
}

cached_ok || download

rm -rf "$DEST.partial"
mkdir -p "$DEST.partial"
tar -xzf "$SRC_CACHE/$ORIG" -C "$DEST.partial"
tar -xJf "$SRC_CACHE/$DEBIAN" -C "$DEST.partial"
while read -r p; do
  case "$p" in ''|'#'*) continue ;; esac
  patch -s -p1 -d "$DEST.partial" < "$DEST.partial/debian/patches/$p"
done < "$DEST.partial/debian/patches/series"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
