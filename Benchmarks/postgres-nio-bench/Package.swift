// swift-tools-version: 6.1
// postgres-nio as a benchmark peer only: a package of its own, so the library never depends on it.
import PackageDescription

let package = Package(
    name: "postgres-nio-bench",
    platforms: [.macOS(.v15)],
    dependencies: [.package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2")],
    targets: [
        .executableTarget(
            name: "postgres-nio-bench",
            dependencies: [.product(name: "PostgresNIO", package: "postgres-nio")]
        )
    ],
    swiftLanguageModes: [.v6]
)
