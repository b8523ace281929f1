# The project's image: infra-up (the `migrate` service of docker-compose.yml runs
# `infra-up migrate upgrade head`). Built in the official Swift image, run on its slim image as a
# user without privileges.
FROM swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY Benchmarks ./Benchmarks
COPY Fuzz ./Fuzz
RUN swift build -c release --product infra-up --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/infra-up" /usr/local/bin/infra-up

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --create-home infra
COPY --from=build /usr/local/bin/infra-up /usr/local/bin/infra-up
WORKDIR /app
COPY --chown=infra:infra settings.toml ./
COPY --chown=infra:infra migrations ./migrations
USER infra
ENTRYPOINT ["infra-up"]
CMD ["status"]
