// swift-tools-version: 6.1
// Micro-benchmarks of the parsers and encoders (ordo-one/benchmark): time, CPU and allocations
// per message. A package of its own, so that the library never depends on the benchmark framework.
// From the project root: `make bench-micro` (the table), `make bench-check` (allocations against
// Thresholds/, failing on a regression), `make bench-thresholds` (record new thresholds).
import PackageDescription

let package = Package(
    name: "micro-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "transcription-infra", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Codecs",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Transport", package: "transcription-infra"),
                .product(name: "PGWire", package: "transcription-infra"),
                .product(name: "RESP", package: "transcription-infra"),
                .product(name: "NATSProto", package: "transcription-infra"),
                .product(name: "Settings", package: "transcription-infra"),
            ],
            path: "Benchmarks/Codecs",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
