import Foundation
import JetStream
import NATSProto
import PGWire
import RESP
import Settings

/// Readiness as a protocol round trip with the project's own clients, never a port check: a
/// PostgreSQL login and `SELECT 1`, Redis AUTH and PING, NATS CONNECT and PING plus JetStream's
/// account info, an HTTP 200 from Prometheus and the exporters. Each probe returns the server's
/// version.
public enum Readiness {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var message: String
        /// A wrong password: waiting longer will not help.
        public var isFinal: Bool
        public var description: String { message }
    }

    /// How a service is probed.
    public enum Probe: Sendable {
        case postgres(port: Int, user: String, password: String, database: String)
        case redis(port: Int, password: String)
        case nats(port: Int, user: String, password: String)
        /// GET the path (200 expected); the version from a `*_build_info` metric.
        case http(port: Int, path: String)
        /// Prometheus's /-/ready, and its version from /api/v1/status/buildinfo.
        case prometheus(port: Int)
    }

    /// One attempt, bounded by `timeout`.
    public static func check(_ probe: Probe, timeout: Duration = .seconds(3)) async throws(Failure) -> String {
        switch probe {
        case .postgres(let port, let user, let password, let database):
            var configuration = PostgresConfiguration(
                hosts: [.init("127.0.0.1", port: port)], user: user, password: password, database: database, applicationName: "infra-up",
                sslMode: .disable, connectTimeout: timeout)
            configuration.statementCacheCapacity = 0
            let connection: PostgresConnection
            do {
                connection = try await PostgresConnection.connect(configuration)
            } catch {
                // 28P01 wrong password, 28000 no such role or refused by pg_hba: final.
                let final = error.sqlState?.rawValue == "28P01" || error.sqlState?.rawValue == "28000"
                throw Failure(message: "PostgreSQL on 127.0.0.1:\(port): \(error)", isFinal: final)
            }
            defer { connection.close() }
            do {
                _ = try await connection.simpleQuery("SELECT 1", timeout: timeout)
            } catch {
                throw Failure(message: "PostgreSQL on 127.0.0.1:\(port): SELECT 1 failed: \(error)", isFinal: false)
            }
            return connection.parameter("server_version").map { String($0.prefix { $0 != " " }) } ?? "?"
        case .redis(let port, let password):
            let configuration = RedisConfiguration(
                host: "127.0.0.1", port: port, password: password.isEmpty ? nil : password, connectTimeout: timeout, commandTimeout: timeout,
                clientName: "infra-up")
            let connection: RedisConnection
            do {
                connection = try await RedisConnection.connect(configuration)
            } catch {
                let text = "\(error)"
                let final = text.contains("WRONGPASS") || text.contains("NOAUTH") || text.contains("invalid password")
                throw Failure(message: "Redis on 127.0.0.1:\(port): \(text)", isFinal: final)
            }
            defer { connection.close() }
            do {
                guard try await connection.send(["PING"]).string == "PONG" else {
                    throw Failure(message: "Redis on 127.0.0.1:\(port) did not answer PING with PONG", isFinal: false)
                }
                let info = try await connection.send(["INFO", "server"]).string ?? ""
                let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("redis_version:") }
                return line.map { String($0.dropFirst("redis_version:".count)) } ?? "?"
            } catch let failure as Failure {
                throw failure
            } catch {
                throw Failure(message: "Redis on 127.0.0.1:\(port): \(error)", isFinal: false)
            }
        case .nats(let port, let user, let password):
            var configuration = NATSConfiguration(servers: ["nats://127.0.0.1:\(port)"])
            if !user.isEmpty {
                configuration.user = user
                configuration.password = password
            }
            configuration.name = "infra-up"
            configuration.connectTimeout = timeout
            configuration.allowReconnect = false
            let client: NATSClient
            do {
                client = try await NATSClient.connect(configuration)
            } catch {
                let final = "\(error)".lowercased().contains("authorization")
                throw Failure(message: "NATS on 127.0.0.1:\(port): \(error)", isFinal: final)
            }
            do {
                try await client.flush(timeout: timeout)
                _ = try await JetStreamContext(client: client, timeout: timeout).accountInfo()
            } catch {
                await client.close()
                throw Failure(message: "NATS on 127.0.0.1:\(port): JetStream is not ready: \(error)", isFinal: false)
            }
            let version = client.serverInfo?.version ?? "?"
            await client.close()
            return version
        case .http(let port, let path):
            let response: HTTP.Response
            do {
                response = try await HTTP.get(port: port, path: path, timeout: timeout)
            } catch {
                throw Failure(message: "\(error)", isFinal: false)
            }
            guard response.status == 200 else {
                throw Failure(message: "GET http://127.0.0.1:\(port)\(path) answered \(response.status)", isFinal: false)
            }
            return version(fromMetrics: response.text) ?? "?"
        case .prometheus(let port):
            _ = try await check(.http(port: port, path: "/-/ready"), timeout: timeout)
            let info = try? await HTTP.get(port: port, path: "/api/v1/status/buildinfo", timeout: timeout)
            let json = info.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.body)) }
            return json?["data"]?["version"]?.string ?? "?"
        }
    }

    /// The `version` label of the first `*_build_info` sample of an exposition text.
    static func version(fromMetrics text: String) -> String? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && line.contains("_build_info{") {
            guard let range = line.range(of: "{version=\"") ?? line.range(of: ",version=\"") else { continue }
            let rest = line[range.upperBound...]
            return String(rest.prefix { $0 != "\"" })
        }
        return nil
    }
}
