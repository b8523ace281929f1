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
        .library(name: "Infra", targets: ["Infra"]),
        .executable(name: "infra-up", targets: ["infra-up"]),
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
        .target(name: "PGWire", dependencies: ["Transport", "COpenSSL"]),
        .target(name: "RESP", dependencies: ["Transport"]),
        .target(name: "NATSProto", dependencies: ["Transport"]),
        .target(name: "Infra", dependencies: ["Transport", "PGWire", "RESP", "NATSProto"]),
        .executableTarget(name: "infra-up", dependencies: ["Infra"]),
        .executableTarget(
            name: "pg-bench",
            dependencies: ["PGWire"],
            path: "Benchmarks/pg-bench"
        ),
        .executableTarget(
            name: "redis-bench",
            dependencies: ["RESP"],
            path: "Benchmarks/redis-bench"
        ),
        .executableTarget(
            name: "nats-bench",
            dependencies: ["NATSProto"],
            path: "Benchmarks/nats-bench"
        ),
        .executableTarget(
            name: "settings-bench",
            dependencies: ["Infra"],
            path: "Benchmarks/settings-bench"
        ),
        .executableTarget(
            name: "transport-bench",
            dependencies: ["Transport"],
            path: "Benchmarks/transport-bench"
        ),

        // Coverage-guided fuzzers (libFuzzer), built by `make fuzz` with -sanitize=fuzzer.
        .target(name: "FuzzSupport", path: "Fuzz/FuzzSupport"),
        .executableTarget(
            name: "resp-fuzz", dependencies: ["RESP", "FuzzSupport"], path: "Fuzz/resp-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "nats-fuzz", dependencies: ["NATSProto", "FuzzSupport"], path: "Fuzz/nats-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "pgwire-fuzz", dependencies: ["PGWire", "FuzzSupport"], path: "Fuzz/pgwire-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "toml-fuzz", dependencies: ["Infra", "FuzzSupport"], path: "Fuzz/toml-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),

        // Helpers shared by the test targets (seeded generators); not a product.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "COpenSSL", "TestSupport"]),
        .testTarget(name: "PGWireTests", dependencies: ["PGWire", "TestSupport"]),
        .testTarget(name: "RESPTests", dependencies: ["RESP", "TestSupport"]),
        .testTarget(name: "NATSProtoTests", dependencies: ["NATSProto", "TestSupport"]),
        .testTarget(name: "InfraTests", dependencies: ["Infra", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
