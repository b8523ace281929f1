import Foundation
import Testing

/// The servers `make test` starts on loopback, found through their INFRA_TEST_* variables
/// (scripts/test-servers.sh sets them). Outside CI a missing server skips the suites that need it;
/// in CI (`CI=true`) those suites run and fail, so a missing server never passes as a skip.
public enum LiveServer: String, Sendable, CaseIterable {
    /// PostgreSQL (INFRA_TEST_POSTGRES_HOST, _PORT, _USER, _PASSWORD, _DATABASE and more).
    case postgres = "INFRA_TEST_POSTGRES_PORT"
    /// Redis (INFRA_TEST_REDIS_URL).
    case redis = "INFRA_TEST_REDIS_URL"
    /// nats-server with JetStream (INFRA_TEST_NATS_URL and the extra servers' variables).
    case nats = "INFRA_TEST_NATS_URL"
    /// PostgreSQL 18, for protocol 3.2 (INFRA_TEST_POSTGRES18_URL).
    case postgres18 = "INFRA_TEST_POSTGRES18_URL"

    /// A new empty folder under the temporary directory.
    public static func scratchDirectory(_ prefix: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Whether the suites needing this server should run: the server is there, or this is CI.
    public var isAvailable: Bool { Self.value(rawValue) != nil || Self.isCI }

    /// Whether this is the PostgreSQL client's second pass, against PostgreSQL 18
    /// (`INFRA_TEST_POSTGRES_PASS=18`, set by scripts/run-tests.sh): that server is built without
    /// TLS and has no standby, so the tests that need either run in the main pass only.
    public static var isPostgres18Pass: Bool { ProcessInfo.processInfo.environment["INFRA_TEST_POSTGRES_PASS"] == "18" }

    /// Whether the tests run in CI, where nothing may be skipped.
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// How to get the servers, for the messages of missing ones.
    public static let howToStart = "start the test servers with `make test` (or `scripts/test-servers.sh run -- swift test`)"

    /// A variable's value, nil when unset or empty.
    public static func value(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }

    /// A variable's value; a missing one fails the test with instructions.
    public static func require(_ name: String) throws -> String {
        guard let value = value(name) else {
            Issue.record("\(name) is not set: \(howToStart)")
            throw Missing(name: name)
        }
        return value
    }

    /// A name unique to this run, so repeated or parallel runs never collide on one server:
    /// `test<separator><random><separator><name>`.
    public static func uniqueName(_ name: String, separator: Character) -> String {
        "test\(separator)\(UUID().uuidString.prefix(8))\(separator)\(name)"
    }

    /// The error of a missing server variable.
    public struct Missing: Error, CustomStringConvertible {
        public let name: String
        public var description: String { "\(name) is not set: \(LiveServer.howToStart)" }
    }
}

/// A Redis master, its replica and three sentinels of a test's own, started by
/// scripts/redis-sentinel-set.sh (INFRA_TEST_REDIS_SENTINEL_SET), with random passwords; the
/// sentinels know the master as "infra-master".
public struct RedisSentinelDeployment: Sendable {
    public let directory: String
    public let password: String
    public let sentinelPassword: String
    public let master: Int
    public let replica: Int
    public let sentinels: [Int]

    /// A `redis+sentinel://` URL of the deployment.
    public var url: String {
        "redis+sentinel://:\(password)@" + sentinels.map { "127.0.0.1:\($0)" }.joined(separator: ",")
            + "/infra-master?sentinel_password=\(sentinelPassword)"
    }

    /// Starts a deployment; returns once the replica is in sync and the sentinels know it.
    public static func start() async throws -> RedisSentinelDeployment {
        let script = try LiveServer.require("INFRA_TEST_REDIS_SENTINEL_SET")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-\(UUID().uuidString.prefix(8))").path
        let password = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let sentinelPassword = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let printed: String
        do {
            printed = try await runScript(script, ["start", directory, password, sentinelPassword])
        } catch {
            _ = try? await runScript(script, ["destroy", directory])  // the nodes it did start
            throw error
        }
        let ports = printed.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard ports.count == 5 else {
            _ = try? await runScript(script, ["destroy", directory])
            throw ScriptFailed(description: "redis-sentinel-set.sh printed \(printed)")
        }
        return RedisSentinelDeployment(
            directory: directory, password: password, sentinelPassword: sentinelPassword, master: ports[0], replica: ports[1],
            sentinels: Array(ports[2...]))
    }

    /// Runs `body` with a deployment of its own, and stops the deployment before returning or
    /// throwing: its five servers are daemons, which nothing else would stop.
    public static func with<Result>(_ body: (RedisSentinelDeployment) async throws -> Result) async throws -> Result {
        let deployment = try await start()
        return try await withCleanup { try await body(deployment) } cleanup: { await deployment.destroy() }
    }

    /// Kills the current master with SIGKILL (as a crash).
    public func killMaster() async throws {
        _ = try await runScript(try LiveServer.require("INFRA_TEST_REDIS_SENTINEL_SET"), ["kill-master", directory, password])
    }

    /// Stops every process of the deployment and removes its folder.
    public func destroy() async {
        guard let script = LiveServer.value("INFRA_TEST_REDIS_SENTINEL_SET") else { return }
        _ = try? await runScript(script, ["destroy", directory])
    }
}
