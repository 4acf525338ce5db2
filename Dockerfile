# tandem's release image: a static tandem binary, CA certificates, time zone
# data and a passwd/group naming the non-root user it runs as (65532),
# nothing else: no shell, no package manager, no libc.
#
# No base image is pulled, so the image builds on a machine without a
# registry or a Docker engine: `make image` (scripts/image.sh) stages the
# files under .work/image from what `make` builds and what Debian's
# ca-certificates and tzdata packages install, then runs
#
#   buildah --storage-driver vfs bud --isolation chroot -f Dockerfile -t tandem .
#
# .dockerignore keeps everything but .work/image out of the build context.
# `docker build -t tandem .` after `make image` builds the same image.
FROM scratch

ARG VERSION=dev

COPY .work/image/passwd .work/image/group /etc/
COPY .work/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY .work/image/zoneinfo /usr/share/zoneinfo
COPY .work/image/tandem /usr/local/bin/tandem

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
ENV PATH=/usr/local/bin
# http.listen; the image's config must listen on :9187, not the default
# 127.0.0.1:9187, to be reached from outside the container.
EXPOSE 9187

LABEL org.opencontainers.image.title="tandem" \
      org.opencontainers.image.description="CDC streaming replicator for zero-downtime migrations to a new schema" \
      org.opencontainers.image.source="https://github.com/tandemcdc/tandem" \
      org.opencontainers.image.version="${VERSION}"

ENTRYPOINT ["/usr/local/bin/tandem"]
CMD ["--help"]
