import Foundation
import Synchronization
import Testing
import Transport

@testable import NATSProto

/// A scripted NATS server on our own listener: it sends INFO, confirms CONNECT's PING, and then
/// runs `script` with the connection and what it has read so far.
final class ScriptedNATSServer: Sendable {
    let listener: Listener
    let task: Task<Void, any Error>

    static let info = #"INFO {"server_id":"FAKE","version":"2.10.0","proto":1,"headers":true,"max_payload":1048576}"# + "\r\n"

    init(connections: Int = 1, script: @escaping @Sendable (Connection, Int) async throws -> Void) throws {
        let listener = try Listener.bind()
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

@Suite("NATS client against a scripted server", .timeLimit(.minutes(1)))
struct NATSFakeServerTests {
    func options(_ server: ScriptedNATSServer) -> NATSOptions {
        var options = NATSOptions(url: server.url)
        options.reconnectWait = .milliseconds(50)
        options.reconnectJitter = .milliseconds(10)
        options.maximumReconnectAttempts = 2
        return options
    }

    @Test func missedPongsCountAsALostConnection() async throws {
        let server = try ScriptedNATSServer { connection, _ in
            // Reads the keep-alive PINGs and never answers them.
            _ = try await ScriptedNATSServer.readUntil("PING\r\nPING\r\n", connection, seconds: 10)
            try await Task.sleep(for: .seconds(2))
        }
        var options = options(server)
        options.pingInterval = .milliseconds(100)
        options.maximumPingsOutstanding = 2
        options.allowReconnect = false
        let client = try await NATSClient.connect(options)
        let events = EventLog(client)
        #expect(try await events.waitFor { event in
            if case .disconnected(_, let reason?) = event { reason.message.contains("stale") } else { false }
        })
        #expect(try await events.waitFor { if case .closed = $0 { true } else { false } })
        let error = await #expect(throws: NATSError.self) { try await client.publish("x", to: "after") }
        #expect(error?.kind == .closed)
    }

    @Test func lameDuckAndDiscoveredServersAreReported() async throws {
        let server = try ScriptedNATSServer { connection, _ in
            let update = #"INFO {"server_id":"FAKE","version":"2.10.0","proto":1,"headers":true,"max_payload":1048576,"#
                + #""connect_urls":["127.0.0.1:1","[::1]:2"],"ldm":true}"# + "\r\n"
            try await connection.write(ByteBuffer(string: update))
            try await ScriptedNATSServer.answerPingThenIdle(connection)
        }
        let client = try await NATSClient.connect(options(server))
        let events = EventLog(client)
        try await client.flush()
        #expect(try await events.waitFor { if case .lameDuck = $0 { true } else { false } })
        #expect(try await events.waitFor { event in
            if case .serversDiscovered(let servers) = event { Set(servers) == ["nats://127.0.0.1:1", "nats://[::1]:2"] } else { false }
        })
        #expect(client.knownServers.count == 3)
        await client.close()
    }

    @Test func permissionViolationsAreEventsAndTheConnectionStays() async throws {
        let server = try ScriptedNATSServer { connection, _ in
            try await connection.write(ByteBuffer(string: "-ERR 'Permissions Violation for Publish to \"secret\"'\r\n"))
            try await ScriptedNATSServer.answerPingThenIdle(connection)
        }
        let client = try await NATSClient.connect(options(server))
        let events = EventLog(client)
        try await client.flush()
        #expect(try await events.waitFor { event in
            if case .serverError(let error) = event { error.message.contains("Permissions Violation") } else { false }
        })
        #expect(client.isConnected)
        await client.close()
    }

    @Test func garbageFromTheServerIsATypedLossThenAReconnect() async throws {
        let server = try ScriptedNATSServer(connections: 2) { connection, index in
            if index == 0 {
                try await connection.write(ByteBuffer(string: "MSG a 1 99999999999999999999\r\nBOGUS\r\n"))
                try await Task.sleep(for: .milliseconds(500))
            } else {
                let text = try await ScriptedNATSServer.readUntil("PUB after 5\r\nhello\r\n", connection)
                #expect(text.contains("SUB restored 1\r\n"), "the subscription is sent again first")
                try await ScriptedNATSServer.answerPingThenIdle(connection)
            }
        }
        let client = try await NATSClient.connect(options(server))
        let events = EventLog(client)
        _ = try await client.subscribe(to: "restored")
        #expect(try await events.waitFor { event in
            if case .disconnected(_, let reason?) = event { reason.kind == .protocolViolation } else { false }
        })
        try await client.publish("hello", to: "after")
        #expect(try await events.waitFor { if case .reconnected = $0 { true } else { false } })
        try await client.flush()
        await client.close()
    }

    @Test func reconnectingGivesUpAfterTheConfiguredAttempts() async throws {
        let server = try ScriptedNATSServer { connection, _ in
            try await Task.sleep(for: .milliseconds(50))
        }
        let client = try await NATSClient.connect(options(server))
        let events = EventLog(client)
        let started = ContinuousClock.now
        server.listener.close()
        #expect(try await events.waitFor { event in
            if case .closed(let reason?) = event { reason.kind == .connection } else { false }
        })
        // Three attempts in all (the first at once, then two more 50 ms apart at least).
        #expect(ContinuousClock.now - started >= .milliseconds(100))
        #expect(client.isClosed)
    }

    @Test func authorizationViolationWhileConnectingIsTyped() async throws {
        let listener = try Listener.bind()
        guard case .tcp(_, let port) = listener.endpoint else { return }
        let task = Task {
            let connection = try await listener.accept(deadline: .after(.seconds(5)))
            defer { connection.close() }
            try await connection.write(ByteBuffer(string: ScriptedNATSServer.info))
            _ = try await ScriptedNATSServer.readUntil("PING\r\n", connection)
            try await connection.write(ByteBuffer(string: "-ERR 'Authorization Violation'\r\n"))
        }
        let error = await #expect(throws: NATSError.self) { try await NATSClient.connect(url: "nats://127.0.0.1:\(port)") }
        #expect(error?.kind == .authorization)
        try await task.value
        listener.close()
    }
}

@Suite("NATS options and credentials")
struct NATSOptionsTests {
    @Test func serverURLsParseWithCredentialsRedacted() throws {
        let plain = try NATSServerAddress(parsing: "demo.example:4333")
        #expect(plain.host == "demo.example" && plain.port == 4333 && !plain.tlsRequired)
        let secure = try NATSServerAddress(parsing: "tls://user:p%40ss@[::1]")
        #expect(secure.tlsRequired && secure.host == "::1" && secure.port == 4222)
        #expect(secure.user == "user" && secure.password == "p@ss")
        #expect(secure.redacted == "tls://[::1]:4222")
        let token = try NATSServerAddress(parsing: "nats://s3cr3t@127.0.0.1:4222")
        #expect(token.token == "s3cr3t" && token.user == nil)
        let bad = #expect(throws: NATSError.self) { try NATSServerAddress(parsing: "ws://host:80") }
        #expect(bad?.kind == .usage)
        let hidden = #expect(throws: NATSError.self) { try NATSServerAddress(parsing: "nats://u:hunter2@a,b") }
        #expect(hidden?.description.contains("hunter2") == false)
    }

    @Test func credentialsFilesAreReadAsNscWritesThem() throws {
        let seed = try NKeyPair.generate(.user).encodedSeed
        let text = """
            -----BEGIN NATS USER JWT-----
            eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQSJ9.c2ln
            ------END NATS USER JWT------

            ************************* IMPORTANT *************************
            NKEY Seed printed below can be used to sign and prove identity.

            -----BEGIN USER NKEY SEED-----
            \(seed)
            ------END USER NKEY SEED------

            *************************************************************
            """
        let credentials = try NATSCredentials(parsing: text, source: "test.creds")
        #expect(credentials.jwt.hasPrefix("eyJ0eXAi"))
        #expect(credentials.seed == seed)
        let missing = #expect(throws: NATSError.self) { try NATSCredentials(parsing: "-----BEGIN X-----\nabc\n-----END X-----", source: "one.creds") }
        #expect(missing?.message.contains("1 of the 2") == true)
        let unreadable = #expect(throws: NATSError.self) { try NATSCredentials(file: "/nonexistent/user.creds") }
        #expect(unreadable?.kind == .usage)
    }

    @Test func subjectValidationMatchesTheRules() {
        for good in ["a", "a.b.c", "foo-bar_baz.1", "ünï.cödé"] { #expect(NATSSubject.problem(good, wildcards: false) == nil, "\(good)") }
        for good in ["*", ">", "a.*.c", "a.>", "*.*"] { #expect(NATSSubject.problem(good, wildcards: true) == nil, "\(good)") }
        for bad in ["", ".", "a.", ".a", "a..b", "a b", "a\tb", "a\u{7F}"] { #expect(NATSSubject.problem(bad, wildcards: true) != nil, "\(bad)") }
        for bad in ["*", "a.>", "a.*.b"] { #expect(NATSSubject.problem(bad, wildcards: false) != nil, "\(bad)") }
        for bad in [">.a", "a.>.b"] { #expect(NATSSubject.problem(bad, wildcards: true) != nil, "\(bad)") }
        // Wildcard characters inside a token are literal.
        #expect(NATSSubject.problem("a*.b>", wildcards: false) == nil)
    }
}
