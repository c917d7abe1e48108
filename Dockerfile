# Image of the authserver binary: a static executable on distroless, run as
# the distroless nonroot user (uid 65532). docs/deployment.md describes how
# to run it and what to set.

FROM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, so that a change to the source reuses this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# The SQLite driver needs cgo, so the binary is linked statically against
# glibc. osusergo and netgo replace the glibc user and DNS lookups, which
# cannot work in a static binary, with Go's own; sqlite_omit_load_extension
# drops SQLite's dlopen of extensions for the same reason.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath \
        -tags 'osusergo netgo sqlite_omit_load_extension' \
        -ldflags '-s -w -linkmode external -extldflags "-static"' \
        -o /out/authserver ./cmd/authserver

# The data directory is created here because the final image has no shell.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/authserver /authserver
# A new named volume at /data starts with this directory's owner, so the
# nonroot user can create the SQLite file and its .secret file there.
COPY --from=build --chown=65532:65532 /out/data /data

ENV AUTHSERVER_ADDR=:8080 \
    AUTHSERVER_DATABASE=/data/authserver.db
VOLUME ["/data"]
USER 65532:65532
EXPOSE 8080

# Exec form only: the image has no /bin/sh. The healthcheck command reads
# AUTHSERVER_ADDR like serve does, so it checks the port serve listens on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/authserver", "healthcheck"]

ENTRYPOINT ["/authserver"]
CMD ["serve"]
