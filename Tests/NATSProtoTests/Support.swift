import Foundation
import Synchronization
import TestSupport
import Testing
import Transport

@testable import NATSProto

extension LiveServer {
    static func natsOptions() throws -> NATSConfiguration { NATSConfiguration(url: try require(LiveServer.nats.rawValue)) }
    static func natsClient(_ configure: (inout NATSConfiguration) -> Void = { _ in }) async throws -> NATSClient {
        var options = try natsOptions()
        configure(&options)
        return try await NATSClient.connect(options)
    }

    /// A subject unique to this run.
    static func natsSubject(_ name: String) -> String { uniqueName(name, separator: ".") }

    /// A nats-server of the test's own, so it can be stopped and started again.
    static func privateNATSServer() throws -> (ChildProcess, Int) {
        let binary = try require("INFRA_TEST_NATS_SERVER_BINARY")
        let listener = try Listener.bind()
        guard case .tcp(_, let port) = listener.endpoint else { throw CancellationError() }
        listener.close()
        return (try ChildProcess([binary, "-a", "127.0.0.1", "-p", String(port)]), port)
    }
}

/// Collects a client's events for later checks.
final class EventLog: Sendable {
    private final class Store: Sendable {
        let events = Mutex<[NATSEvent]>([])
    }

    private let store = Store()
    private let task: Task<Void, Never>

    init(_ client: NATSClient) {
        let store = self.store
        task = Task {
            for await event in client.events { store.events.withLock { $0.append(event) } }
        }
    }

    var all: [NATSEvent] { store.events.withLock { $0 } }

    /// Waits (up to `seconds`) until an event matches.
    func waitFor(seconds: Double = 10, _ matches: (NATSEvent) -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if all.contains(where: matches) { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    deinit { task.cancel() }
}

extension NATSSubscription {
    /// The next `count` messages, failing the test on a timeout.
    func collect(_ count: Int, seconds: Double = 10) async throws -> [NATSMessage] {
        try await withThrowingTaskGroup(of: [NATSMessage]?.self) { group in
            group.addTask {
                var collected: [NATSMessage] = []
                for try await message in self {
                    collected.append(message)
                    if collected.count == count { break }
                }
                return collected
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first ?? []
        }
    }
}

/// A scripted NATS server on our own listener: it sends INFO, confirms CONNECT's PING, and then
/// runs `script` with the connection and what it has read so far.
final class ScriptedNATSServer: Sendable {
    let listener: Listener
    let task: Task<Void, any Error>

    static let info = #"INFO {"server_id":"FAKE","version":"2.10.0","proto":1,"headers":true,"max_payload":1048576}"# + "\r\n"

    init(connections: Int = 1, reactor: Reactor = .shared, script: @escaping @Sendable (Connection, Int) async throws -> Void) throws {
        let listener = try Listener.bind(reactor: reactor)
        self.listener = listener
        task = Task {
            for index in 0..<connections {
                let connection = try await listener.accept(deadline: .after(.seconds(20)))
                defer { connection.close() }
                try await connection.write(ByteBuffer(string: Self.info))
                var buffer = ByteBuffer()
                // CONNECT and PING arrive together or one after the other.
                while !String(decoding: buffer.readableBytesView, as: UTF8.self).contains("PING\r\n") {
                    _ = try await connection.read(into: &buffer, deadline: .after(.seconds(5)))
                }
                try await connection.write(ByteBuffer(string: "PONG\r\n"))
                try await script(connection, index)
            }
        }
    }

    var url: String {
        if case .tcp(_, let port) = listener.endpoint { return "nats://127.0.0.1:\(port)" }
        return ""
    }

    /// Answers the client's next PING (its flush), then keeps the connection open for a second.
    static func answerPingThenIdle(_ connection: Connection) async throws {
        _ = try await readUntil("PING\r\n", connection)
        try await connection.write(ByteBuffer(string: "PONG\r\n"))
        try await Task.sleep(for: .seconds(1))
    }

    /// Reads until `text` has arrived (or the deadline passes).
    static func readUntil(_ text: String, _ connection: Connection, seconds: Int = 5) async throws -> String {
        var buffer = ByteBuffer()
        while !String(decoding: buffer.readableBytesView, as: UTF8.self).contains(text) {
            _ = try await connection.read(into: &buffer, deadline: .after(.seconds(seconds)))
        }
        return String(decoding: buffer.readableBytesView, as: UTF8.self)
    }
}

extension GoldenStream {
    /// The captured NATS conversations of Fixtures/nats/.
    static func nats() throws -> [GoldenStream] { try all(in: "nats", fileExtension: "nats") }
}
