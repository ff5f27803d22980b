#!/usr/bin/env bash
# contrib/debian/test-install.sh: installs a built rcomet .deb with dpkg into a throwaway copy of
# this Debian system and checks it there: the package installs (postinst creates the system user
# `rcomet` and its log and state directories and enables the unit), the service's user starts
# the installed binary on the installed config, it answers /ping and its stop writes the
# snapshot, removal keeps the config, purge removes it and both directories. The copy is an
# overlay of / (changes go to a temporary directory) in a private mount namespace, so this system
# is never changed. Needs root (mount, chroot); exits 77 (skipped) where that is not possible.
#
# Usage: bash contrib/debian/test-install.sh PACKAGE.deb
# Depends on: bash, util-linux (unshare, setpriv), coreutils (chroot, timeout), dpkg, overlayfs.

set -euo pipefail
deb=$(realpath "${1:?usage: test-install.sh PACKAGE.deb}")
skip() { echo "test-install.sh: skipped: $*" >&2; exit 77; }
((EUID == 0)) || skip "not root"
for tool in unshare chroot setpriv dpkg; do
    command -v "$tool" >/dev/null || skip "$tool not found"
done
[[ -f /etc/debian_version ]] || skip "not a Debian system"
command -v adduser >/dev/null || skip "adduser (which the package depends on) is not installed"
unshare --mount --propagation private true 2>/dev/null || skip "cannot create a mount namespace"

work=$(mktemp -d "${TMPDIR:-/tmp}/rcomet-deb-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/upper" "$work/work" "$work/root"
cp "$deb" "$work/upper.deb"

# Inside the copy: install, run, remove, purge. Every step says what it checks.
cat >"$work/inside.sh" <<'INSIDE'
set -eu
fail() { echo "FAIL: $*" >&2; exit 1; }
! getent passwd rcomet >/dev/null || fail "a user rcomet exists before the installation"
dpkg -i /rcomet-under-test.deb >/dev/null
getent passwd rcomet >/dev/null || fail "postinst created no user rcomet"
[ "$(getent passwd rcomet | cut -d: -f7)" != /bin/bash ] || fail "rcomet has a login shell"
[ "$(stat -c %U /var/log/rcomet)" = rcomet ] || fail "/var/log/rcomet does not belong to rcomet"
[ "$(stat -c %U /var/lib/rcomet)" = rcomet ] || fail "/var/lib/rcomet does not belong to rcomet"
[ -L /etc/systemd/system/multi-user.target.wants/rcomet.service ] || fail "the unit is not enabled"
[ "$(dpkg-query -W -f '${Status}' rcomet)" = "install ok installed" ] || fail "not installed"
setpriv --reuid=rcomet --regid=rcomet --clear-groups /usr/bin/rcomet /etc/rcomet/rcomet.conf \
    --admin-listen 127.0.0.1:0 --front-listen 127.0.0.1:0 >/tmp/out 2>&1 &
pid=$!
front=""
for _ in $(seq 200); do
    front=$(sed -n 's/^rcomet ready .*front=\([^ ]*\).*/\1/p' /tmp/out)
    [ -n "$front" ] && break
    sleep 0.05
done
[ -n "$front" ] || { cat /tmp/out >&2; kill "$pid"; fail "no ready line"; }
port=${front##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /ping HTTP/1.0\r\n\r\n' >&3
reply=$(timeout 5 cat <&3)
kill "$pid"
wait "$pid" || true
case $reply in *'"sub_timeout":30'*) ;; *) fail "/ping answered: $reply" ;; esac
# The shipped config's snapshot: its directory was writable at start, and the stop wrote it.
! grep -q 'snapshot.*not writable\|snapshot.*does not exist' /tmp/out || { cat /tmp/out >&2; fail "snapshot warning"; }
[ -f /var/lib/rcomet/channels.snapshot ] || { cat /tmp/out >&2; fail "the stop wrote no snapshot"; }
dpkg -r rcomet >/dev/null
[ -f /etc/rcomet/rcomet.conf ] || fail "removal deleted the config"
[ ! -e /usr/bin/rcomet ] || fail "removal left the binary"
dpkg -P rcomet >/dev/null
[ ! -e /etc/rcomet/rcomet.conf ] || fail "purge left the config"
[ ! -e /var/log/rcomet ] || fail "purge left /var/log/rcomet"
[ ! -e /var/lib/rcomet ] || fail "purge left /var/lib/rcomet"
echo "installed, ran as rcomet on $front, removed and purged"
INSIDE

unshare --mount --propagation private bash -c '
set -e
w=$1
mount -t overlay overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" "$w/root" ||
    exit 77
mount --rbind /dev "$w/root/dev"
mount -t proc proc "$w/root/proc"
mount -t tmpfs tmpfs "$w/root/run"
mount -t tmpfs tmpfs "$w/root/tmp"
cp "$w/upper.deb" "$w/root/rcomet-under-test.deb"
chroot "$w/root" bash -s <"$w/inside.sh"
' bash "$work" || {
    rc=$?
    ((rc == 77)) && skip "cannot mount an overlay of / here"
    exit "$rc"
}
