#!/usr/bin/env bash
# image.sh builds tandem's release image (Dockerfile) into the local image
# store as $IMAGE (default tandem), with buildah and no Docker engine:
#
#   1. scripts/deps.sh image: buildah, ca-certificates and tzdata (apt-get)
#   2. a static binary: CGO_ENABLED=0 go build -trimpath, version stamped
#      with -ldflags "-X main.version=$VERSION" (default: git describe)
#   3. stage the binary, /etc/ssl/certs/ca-certificates.crt, /usr/share/zoneinfo
#      and a passwd/group for user 65532 under .work/image
#   4. buildah --storage-driver vfs bud --isolation chroot (as root)
#
# vfs and chroot need neither overlay mounts nor user namespaces, so this
# works as root in a plain container or VM; every buildah command that reads
# the image needs the same --storage-driver vfs. It prints the time each
# step took.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-tandem}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
GO=${GO:-go}
STAGE=.work/image

if [[ $(id -u) -ne 0 ]]; then
	echo "image: buildah with the vfs driver and chroot isolation needs root here" >&2
	exit 1
fi

step_start=$SECONDS
took() { echo "image: $1 in $((SECONDS - step_start))s"; step_start=$SECONDS; }

bash scripts/deps.sh image
took "deps"

rm -rf "$STAGE"
mkdir -p "$STAGE"
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$STAGE/tandem" ./cmd/tandem
took "static build of tandem $VERSION"

cp /etc/ssl/certs/ca-certificates.crt "$STAGE/ca-certificates.crt"
# The zone files as Debian installs them, links kept (they are relative),
# but for localtime, which points at /etc/localtime: the image has none,
# so its local time zone is UTC unless TZ says otherwise.
cp -a /usr/share/zoneinfo "$STAGE/zoneinfo"
rm -f "$STAGE/zoneinfo/localtime"
if find "$STAGE/zoneinfo" -type l -lname '/*' | grep . >/dev/null; then
	echo "image: absolute links under /usr/share/zoneinfo would dangle in the image:" >&2
	find "$STAGE/zoneinfo" -type l -lname '/*' >&2
	exit 1
fi
printf '%s\n' 'root:x:0:0:root:/:/sbin/nologin' 'tandem:x:65532:65532:tandem:/nonexistent:/sbin/nologin' >"$STAGE/passwd"
printf '%s\n' 'root:x:0:' 'tandem:x:65532:' >"$STAGE/group"
chmod 0644 "$STAGE/passwd" "$STAGE/group" "$STAGE/ca-certificates.crt"
chmod 0755 "$STAGE/tandem"

previous=$(buildah --storage-driver vfs images --quiet "$IMAGE" 2>/dev/null || true)
buildah --storage-driver vfs bud --isolation chroot --quiet \
	--build-arg "VERSION=$VERSION" -f Dockerfile -t "$IMAGE" . >/dev/null
took "buildah bud"
# vfs keeps a full copy per image: drop the one this build replaced (unless
# a container still uses it), so repeated builds do not fill the disk.
current=$(buildah --storage-driver vfs images --quiet "$IMAGE")
if [[ -n $previous && $previous != "$current" ]]; then
	buildah --storage-driver vfs rmi "$previous" >/dev/null 2>&1 || true
fi
buildah --storage-driver vfs images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' "$IMAGE" | sed 's/^/image: built /'
