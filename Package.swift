// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "transcription-infra",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Transport", targets: ["Transport"]),
        .library(name: "PGWire", targets: ["PGWire"]),
        .library(name: "RESP", targets: ["RESP"]),
        .library(name: "NATSProto", targets: ["NATSProto"]),
        .library(name: "JetStream", targets: ["JetStream"]),
        .library(name: "Settings", targets: ["Settings"]),
        .library(name: "Infra", targets: ["Infra"]),
        .executable(name: "infra-up", targets: ["infra-up"]),
    ],
    dependencies: [
        // The client targets' one package dependency: the logging API, so callers pass their Logger.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // Infra's pool: its waiter queue, its metrics API and its place in a service's lifecycle.
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // infra-up's command line, and the programs it runs to completion (initdb, apt-get, docker).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.0"),
    ],
    targets: [
        // libssl/libcrypto through pkg-config, plus inline wrappers for the macros Swift cannot import.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // Header-only access to epoll, eventfd and a few socket helpers that Glibc does not export.
        .systemLibrary(name: "CTransport"),
        .target(name: "Transport", dependencies: ["COpenSSL", "CTransport"]),
        .target(name: "PGWire", dependencies: ["Transport", .product(name: "Logging", package: "swift-log")]),
        .target(name: "RESP", dependencies: ["Transport", .product(name: "Logging", package: "swift-log")]),
        .target(name: "NATSProto", dependencies: ["Transport", .product(name: "Logging", package: "swift-log")]),
        // JetStream, KV and Object Store on NATSProto's public API only.
        .target(name: "JetStream", dependencies: ["NATSProto"]),
        // TOML, .env and the Dynaconf rules, and the typed settings: Foundation only.
        .target(name: "Settings"),
        .target(
            name: "Infra",
            dependencies: [
                "Transport", "PGWire", "RESP", "NATSProto", "JetStream", "Settings",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            exclude: ["Pool/README.md", "Migrations/README.md", "Topology/README.md", "Provisioning/README.md"]
        ),
        .executableTarget(
            name: "infra-up",
            dependencies: [
                "Infra", "Settings", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "pg-bench",
            dependencies: ["PGWire", "Infra", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/pg-bench"
        ),
        .executableTarget(
            name: "redis-bench",
            dependencies: ["RESP"],
            path: "Benchmarks/redis-bench"
        ),
        .executableTarget(
            name: "nats-bench",
            dependencies: ["NATSProto", "JetStream"],
            path: "Benchmarks/nats-bench"
        ),
        .executableTarget(
            name: "settings-bench",
            dependencies: ["Settings"],
            path: "Benchmarks/settings-bench"
        ),
        .executableTarget(
            name: "soak",
            dependencies: ["Infra", "PGWire", "RESP", "NATSProto", "JetStream", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/soak"
        ),
        .executableTarget(
            name: "transport-bench",
            dependencies: ["Transport"],
            path: "Benchmarks/transport-bench"
        ),

        // Coverage-guided fuzzers (libFuzzer), built by `make fuzz` with -sanitize=fuzzer.
        .target(name: "FuzzSupport", path: "Fuzz/FuzzSupport"),
        .target(
            name: "FuzzTargets", dependencies: ["FuzzSupport", "RESP", "NATSProto", "PGWire", "JetStream", "Settings", "Transport"],
            path: "Fuzz/FuzzTargets"
        ),
        .executableTarget(
            name: "resp-fuzz", dependencies: ["FuzzTargets", "FuzzSupport"], path: "Fuzz/resp-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "nats-fuzz", dependencies: ["FuzzTargets", "FuzzSupport"], path: "Fuzz/nats-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "pgwire-fuzz", dependencies: ["FuzzTargets", "FuzzSupport"], path: "Fuzz/pgwire-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "jetstream-fuzz", dependencies: ["FuzzTargets", "FuzzSupport"], path: "Fuzz/jetstream-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "toml-fuzz", dependencies: ["FuzzTargets", "FuzzSupport"], path: "Fuzz/toml-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),

        // Writes the fuzzers' seed corpora from the golden streams (scripts/fuzz.sh).
        .executableTarget(name: "fixture-corpus", dependencies: ["TestSupport"], path: "Fuzz/fixture-corpus"),

        // Helpers shared by the test targets (live servers, golden streams, seeded generators,
        // child processes); not a product.
        .target(
            name: "TestSupport", dependencies: ["Transport", .product(name: "Logging", package: "swift-log")], path: "Tests/TestSupport"
        ),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "COpenSSL", "TestSupport"]),
        .testTarget(name: "PGWireTests", dependencies: ["PGWire", "COpenSSL", "Transport", "TestSupport"]),
        .testTarget(name: "RESPTests", dependencies: ["RESP", "TestSupport"]),
        .testTarget(name: "NATSProtoTests", dependencies: ["NATSProto", "TestSupport"]),
        .testTarget(name: "JetStreamTests", dependencies: ["JetStream", "NATSProto", "Transport", "TestSupport"]),
        .testTarget(name: "SettingsTests", dependencies: ["Settings", "TestSupport"]),
        .testTarget(name: "FuzzRegressionTests", dependencies: ["FuzzTargets", "TestSupport"]),
        .testTarget(
            name: "InfraTests",
            dependencies: [
                "Infra", "PGWire", "RESP", "Settings", "Transport", "TestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
