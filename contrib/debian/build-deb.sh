#!/usr/bin/env bash
# contrib/debian/build-deb.sh: builds the Debian package of rcomet from a built binary
# (`make deb`). The files are staged with contrib/install.sh (PREFIX=/usr, /etc, /lib/systemd),
# the binary's debug information is stripped, the dependencies come from dpkg-shlibdeps (plus
# adduser, which postinst uses), /etc/rcomet/rcomet.conf is a conffile, and contrib/debian/
# {postinst,prerm,postrm} are the maintainer scripts. Prints the path of the .deb.
#
# Usage: bash contrib/debian/build-deb.sh BINARY [OUTDIR]     (OUTDIR: default the current one)
# Env:   DEB_VERSION (the crate's version), DEB_MAINTAINER, SOURCE_DATE_EPOCH (file times)
# Depends on: bash, dpkg-deb, dpkg (architecture); dpkg-shlibdeps and strip (optional).

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:?usage: build-deb.sh BINARY [OUTDIR]}
out=${2:-.}
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }
[[ -x $bin ]] || { echo "build-deb.sh: $bin is not an executable (run 'make build' first)" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=${DEB_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)}
[[ -n $version ]] || { echo "build-deb.sh: no version in Cargo.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-rcomet maintainers <rcomet@localhost>}

work=$(mktemp -d "${TMPDIR:-/tmp}/rcomet-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/rcomet_${version}_$arch

DESTDIR=$stage PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system \
    bash "$root/contrib/install.sh" "$bin" >/dev/null
if command -v strip >/dev/null; then
    strip --strip-debug "$stage/usr/bin/rcomet"
fi

doc=$stage/usr/share/doc/rcomet
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rcomet
Source: the rcomet repository

Files: *
Copyright: the rcomet authors
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 and associated documentation files (the "Software"), to deal in the Software without
 restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
 BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
 NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
 DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
COPYRIGHT
chmod 0644 "$doc/copyright"

# Shared-library dependencies of the binary (libc6, libgcc-s1 with their minimum versions).
shlibs=""
if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$work/src/debian"
    printf 'Source: rcomet\n\nPackage: rcomet\nArchitecture: any\n' >"$work/src/debian/control"
    shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "$stage/usr/bin/rcomet" 2>/dev/null |
        sed -n 's/^shlibs:Depends=//p')
fi
[[ -n $shlibs ]] || shlibs="libc6, libgcc-s1"

install -d -m 0755 "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: rcomet
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: adduser, $shlibs
Section: net
Priority: optional
Description: comet/push server for a million connections, compatible with iComet
 rcomet pushes messages published over HTTP on its admin port to every client
 subscribed to a channel on its front port, over long-poll (JSON or JSONP),
 chunked streaming, Server-Sent Events or a forever-iframe. It speaks iComet's
 protocol and reads iComet's config file, runs one event loop per core (epoll or
 io_uring) and holds a million idle subscribers in a few hundred MB.
 .
 The package runs it as the systemd service rcomet.service (user rcomet) with
 /etc/rcomet/rcomet.conf.
CONTROL
printf '/etc/rcomet/rcomet.conf\n' >"$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles"

# Reproducible file times.
if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
    find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
fi
deb=$out/rcomet_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
printf '%s\n' "$deb"
