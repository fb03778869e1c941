# ballast as a static binary on distroless/static, non-root, with CA certificates for
# HTTPS registries (distroless/static ships them).
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# A workspace member (the tests' fixture kit): cargo loads every member's manifest.
COPY crates ./crates
COPY examples ./examples
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin ballast \
 && strip target/x86_64-unknown-linux-musl/release/ballast

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/ballast /usr/local/bin/ballast
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ballast"]
