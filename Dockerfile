# syntax=docker/dockerfile:1
# Multi-stage: static binaries (CGO off) for worker, publisher and sandbox,
# built exactly as scripts/build.sh builds them, on a minimal non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION=${VERSION} ./scripts/build.sh

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/worker /src/bin/publisher /src/bin/sandbox /usr/local/bin/
USER 65532:65532
EXPOSE 8080
# The worker by default; `--entrypoint /usr/local/bin/publisher` for the CLI.
ENTRYPOINT ["/usr/local/bin/worker"]
