# syntax=docker/dockerfile:1
# Builds the auditrail image: a static binary on distroless, no shell.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t auditrail .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The same build the end-to-end tests and the benchmark use.
RUN ./scripts/build.sh /out/auditrail "${VERSION}"

# distroless/static carries CA certificates and tzdata and nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/auditrail /usr/local/bin/auditrail
# Non-root by default. On control-plane nodes the audit log is root-owned
# 0600 in a 0700 directory; the Helm chart and the static pod run the
# container as uid 0 with every capability dropped but DAC_READ_SEARCH.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/auditrail"]
CMD ["run", "--config", "/etc/auditrail/auditrail.yaml"]
