#!/usr/bin/env bash
# Builds the small busybox image the examples and tests run, from Debian's busybox-static
# (no registry is needed). Does nothing if the image is already there.
#   usage: scripts/build-example-image.sh [IMAGE]   (default: cj-example/busybox:1)
set -euo pipefail
image="${1:-cj-example/busybox:1}"
if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if [ ! -x /bin/busybox ]; then
  echo "installing busybox-static ..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp /bin/busybox "$context/busybox"
cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/mkdir", "-p", "/srv/www", "/tmp"]
RUN ["/bin/sh", "-c", "echo ok > /srv/www/index.html && echo ok > /srv/www/health"]
CMD ["/bin/sh"]
DOCKERFILE
echo "building $image from busybox-static ..." >&2
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$context" >/dev/null 2>&1
