#!/usr/bin/env bash
# contrib/install.sh: installs rcomet (`make install`, and the staging of `make deb`).
#
# Usage: bash contrib/install.sh BINARY
# Env:   DESTDIR    staging root prepended to every path ("" = the live system)
#        PREFIX     /usr/local; BINDIR ($PREFIX/bin), SYSCONFDIR ($PREFIX/etc, /etc when PREFIX is
#                   /usr), UNITDIR ($PREFIX/lib/systemd/system), DATADIR ($PREFIX/share),
#                   DOCDIR ($DATADIR/doc/rcomet)
#
# Installs BINDIR/rcomet, SYSCONFDIR/rcomet/rcomet.conf (only if absent: an edited config is
# kept), UNITDIR/rcomet.service with this installation's paths, DATADIR/rcomet/sysctl/ (the kernel
# settings for a million connections, to be activated by hand: see its README.md) and README.md and
# docs/PROTOCOL.md in DOCDIR. Creates no user and starts nothing.
# Depends on: bash, coreutils (install), sed.

set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:?usage: contrib/install.sh BINARY}
[[ -x $bin ]] || { echo "install.sh: $bin is not an executable: run 'make build' first (or name one with BIN=...)" >&2; exit 1; }

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
PREFIX=${PREFIX%/}
BINDIR=${BINDIR:-$PREFIX/bin}
if [[ -z ${SYSCONFDIR:-} ]]; then
    if [[ $PREFIX == /usr ]]; then SYSCONFDIR=/etc; else SYSCONFDIR=$PREFIX/etc; fi
fi
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
DATADIR=${DATADIR:-$PREFIX/share}
DOCDIR=${DOCDIR:-$DATADIR/doc/rcomet}
for dir in "$BINDIR" "$SYSCONFDIR" "$UNITDIR" "$DATADIR" "$DOCDIR"; do
    [[ $dir == /* ]] || { echo "install.sh: '$dir' is not an absolute path" >&2; exit 1; }
done

say() { printf 'install: %s\n' "$*"; }

install -d -m 0755 "$DESTDIR$BINDIR" "$DESTDIR$SYSCONFDIR/rcomet" "$DESTDIR$UNITDIR" \
    "$DESTDIR$DATADIR/rcomet/sysctl" "$DESTDIR$DOCDIR"
install -m 0755 "$bin" "$DESTDIR$BINDIR/rcomet"
say "$DESTDIR$BINDIR/rcomet"

conf=$DESTDIR$SYSCONFDIR/rcomet/rcomet.conf
if [[ -e $conf ]]; then
    say "$conf exists: kept (the shipped one is $root/contrib/rcomet.conf)"
else
    install -m 0644 "$root/contrib/rcomet.conf" "$conf"
    say "$conf"
fi

# The unit names the package's paths; point it at this installation's.
unit=$DESTDIR$UNITDIR/rcomet.service
sed -e "s|/usr/bin/rcomet|$BINDIR/rcomet|g" \
    -e "s|/etc/rcomet/|$SYSCONFDIR/rcomet/|g" \
    -e "s|/usr/share/doc/rcomet/|$DOCDIR/|g" \
    "$root/contrib/systemd/rcomet.service" >"$unit.tmp"
chmod 0644 "$unit.tmp"
mv "$unit.tmp" "$unit"
say "$unit"

for f in 99-rcomet-c1000k.conf limits.conf rcomet.service.d-limits.conf README.md; do
    install -m 0644 "$root/sysctl/$f" "$DESTDIR$DATADIR/rcomet/sysctl/$f"
done
install -m 0755 "$root/sysctl/check.sh" "$DESTDIR$DATADIR/rcomet/sysctl/check.sh"
say "$DESTDIR$DATADIR/rcomet/sysctl/"

install -m 0644 "$root/README.md" "$DESTDIR$DOCDIR/README.md"
install -m 0644 "$root/docs/PROTOCOL.md" "$DESTDIR$DOCDIR/PROTOCOL.md"
say "$DESTDIR$DOCDIR/"
