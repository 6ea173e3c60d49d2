#!/bin/bash
# A container-like sandbox for one server process, used by xtask/tests/servers.rs: run inside
# `unshare --mount --net --fork` as root, it builds a root filesystem in which the server sees
# the chart's configuration files at the paths the chart mounts them, a read-only tree
# everywhere else, and a writable tmpfs (an emptyDir) only at each of the chart's writable
# paths; then it starts the server as the pod's user, without capabilities, and answers one
# HTTP request per line of REQUESTS from inside the new network namespace.
#
# Environment (all required):
#   PACKAGES   a folder with the server's Debian packages extracted (dpkg -x)
#   FILES      a folder whose tree is laid over the root as the chart's mounted files
#              (FILES/etc/nginx/nginx.conf -> /etc/nginx/nginx.conf)
#   WRITABLE   the writable paths, space-separated (the chart's emptyDirs)
#   RUN_UID    the user and group the pod runs as
#   COMMAND    the server's command line, run by /bin/sh in the root
#   HOSTS      lines for /etc/hosts ("127.0.0.2 catalogue")
#   STUBS      "ip:port:name" entries: an HTTP server answering /<name>.txt with <name>,
#              listening before the server starts
#   REQUESTS   "url" lines, fetched with curl from the namespace once the server listens
#   WAIT_PORT  the port the server listens on
#   OUT        a folder for the results (server.log, response-N.txt)
set -euo pipefail

root="$OUT/root"
mkdir -p "$root"
mount -t tmpfs -o mode=0755 tmpfs "$root"
mkdir -p "$root"/{usr,etc,dev,proc,run,var,srv/stubs}
# /usr: the host's, with the packages' files over it; read-only.
# The chart's files under /usr (FILES/usr) lie over the packages' files, those over the host's.
lower="$PACKAGES/usr:/usr"
if [ -d "$FILES/usr" ]; then lower="$FILES/usr:$lower"; fi
mount -t overlay overlay -o "ro,lowerdir=$lower" "$root/usr"
for link in bin sbin lib lib64; do ln -s "usr/$link" "$root/$link"; done
# Relative links, so that paths resolved from outside the root stay inside it.
ln -s ../run "$root/var/run"
mkdir -p "$root/run/lock"
ln -s ../run/lock "$root/var/lock"
mount --bind /dev "$root/dev"
mount -t proc proc "$root/proc"
# /etc: the packages' configuration, the host's account and library files.
if [ -d "$PACKAGES/etc" ]; then cp -a "$PACKAGES/etc/." "$root/etc/"; fi
cp -a /etc/passwd /etc/group /etc/nsswitch.conf /etc/ld.so.conf /etc/mime.types "$root/etc/"
cp -a /etc/ld.so.conf.d "$root/etc/"
printf '127.0.0.1 localhost\n%s\n' "$HOSTS" > "$root/etc/hosts"
# Other packaged trees (/var/www, /var/lib ...).
if [ -d "$PACKAGES/var" ]; then cp -a "$PACKAGES/var/." "$root/var/"; fi
ldconfig -r "$root"
# The chart's files, then the emptyDirs (mode 0777, as Kubernetes makes them).
find "$FILES" -mindepth 1 -maxdepth 1 ! -name usr -exec cp -a {} "$root/" \;
for path in $WRITABLE; do
  mkdir -p "$root/$path"
  mount -t tmpfs -o mode=0777 tmpfs "$root/$path"
done
# Everything but the emptyDirs is read-only from here on.
mount -o remount,ro "$root"

ip link set lo up
for stub in $STUBS; do
  IFS=: read -r ip port name <<< "$stub"
  mkdir -p "$OUT/stubs/$name"
  echo "$name" > "$OUT/stubs/$name/$name.txt"
  ip addr add "$ip/8" dev lo 2>/dev/null || true
  python3 -m http.server --bind "$ip" --directory "$OUT/stubs/$name" "$port" > /dev/null 2>&1 &
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://$ip:$port/$name.txt"; then break; fi
    sleep 0.1
  done
done

# The server's output goes to a file the pod's user owns, as a container's output is its own.
touch "$OUT/server.log"
chown "$RUN_UID:$RUN_UID" "$OUT/server.log"
exec 3>"$OUT/server.log"
chroot "$root" setpriv --reuid="$RUN_UID" --regid="$RUN_UID" --clear-groups --inh-caps=-all --bounding-set=-all \
  --no-new-privs /bin/sh -c "$COMMAND" >&3 2>&3 &
server=$!

for _ in $(seq 1 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$WAIT_PORT/" ; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "the server exited" >&2; cat "$OUT/server.log" >&2; exit 1; fi
  sleep 0.1
done
n=0
while read -r url; do
  [ -n "$url" ] || continue
  n=$((n + 1))
  curl -s -o "$OUT/response-$n.txt" -w '%{http_code}' "$url" > "$OUT/status-$n.txt" || echo 000 > "$OUT/status-$n.txt"
done <<< "$REQUESTS"
# Writing outside the emptyDirs must fail for the pod's user.
if chroot "$root" setpriv --reuid="$RUN_UID" --regid="$RUN_UID" --clear-groups /bin/sh -c 'echo x > /etc/probe' 2>/dev/null; then
  echo "the pod's user could write /etc" > "$OUT/writable-root.txt"
fi
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
