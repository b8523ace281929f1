import Foundation
import Testing
import TestSupport

/// Runs scripts/settings-oracle.py under the Python that has Dynaconf (`make test` sets
/// INFRA_TEST_DYNACONF_PYTHON). Outside CI, tests that need it skip when it is missing.
enum SettingsOracle {
    static var python: String? {
        guard let path = ProcessInfo.processInfo.environment["INFRA_TEST_DYNACONF_PYTHON"], !path.isEmpty else { return nil }
        return path
    }

    static var isAvailable: Bool { python != nil || ProcessInfo.processInfo.environment["CI"] == "true" }

    static var projectScript: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/settings-oracle.py")
    }

    /// A copy of the oracle outside the project: Dynaconf searches the running script's folder and
    /// its parents for settings files, and must not find the project's own settings.toml there.
    static let script: URL = {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("settings-oracle-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let copy = folder.appendingPathComponent("settings-oracle.py")
        try? FileManager.default.copyItem(at: projectScript, to: copy)
        return copy
    }()

    /// Fixture files stored under names git does not ignore, and the names the loaders look for.
    /// (`.env` and `.secrets.toml` are never committed, not even as test inputs.)
    static let fixtureNames = [
        "env.fixture": ".env", "secrets.fixture.toml": ".secrets.toml", "secrets.local.fixture.toml": ".secrets.local.toml",
    ]

    /// Copies `folder` into a fresh temporary folder, giving fixture files their real names, so that
    /// neither loader finds files of the project or of the developer in the folders above it.
    static func isolatedCopy(of folder: URL) throws -> URL {
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("settings-case-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: folder, to: target)
        for (stored, real) in fixtureNames where FileManager.default.fileExists(atPath: target.appendingPathComponent(stored).path) {
            try FileManager.default.moveItem(at: target.appendingPathComponent(stored), to: target.appendingPathComponent(real))
        }
        return target
    }

    /// Runs the oracle (off the cooperative pool: Python takes a while to start) and returns its
    /// JSON output.
    static func run(_ mode: String, _ target: String, environment: [String: String]) async throws -> Any {
        guard let python else {
            Issue.record("INFRA_TEST_DYNACONF_PYTHON is not set: run the tests with `make test`")
            throw CancellationError()
        }
        let output = try await runCommand(python, [script.path, mode, target], environment: environment)
        return try JSONSerialization.jsonObject(with: output.standardOutput)
    }

    /// The environment a child process gets: PATH and HOME only, plus `extra`.
    static func baseEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"]
        environment.merge(extra) { $1 }
        return environment
    }
}
