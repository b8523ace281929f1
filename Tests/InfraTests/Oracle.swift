import Foundation
import Testing

/// Runs scripts/settings-oracle.py under the Python that has Dynaconf (`make test` sets
/// INFRA_TEST_DYNACONF_PYTHON). Outside CI, tests that need it skip when it is missing.
enum SettingsOracle {
    static var python: String? {
        guard let path = ProcessInfo.processInfo.environment["INFRA_TEST_DYNACONF_PYTHON"], !path.isEmpty else { return nil }
        return path
    }

    static var isAvailable: Bool { python != nil || ProcessInfo.processInfo.environment["CI"] == "true" }

    static var script: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/settings-oracle.py")
    }

    /// Runs the oracle and returns its JSON output.
    static func run(_ mode: String, _ target: String, environment: [String: String]) throws -> Any {
        guard let python else {
            Issue.record("INFRA_TEST_DYNACONF_PYTHON is not set: run the tests with `make test`")
            throw CancellationError()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path, mode, target]
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return try JSONSerialization.jsonObject(with: data)
    }

    /// The environment a child process gets: PATH and HOME only, plus `extra`.
    static func baseEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"]
        environment.merge(extra) { $1 }
        return environment
    }
}
