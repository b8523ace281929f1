import Foundation
import Synchronization
import Testing
import Transport

@testable import NATSProto

@Suite("NATS client against a scripted server", .timeLimit(.minutes(1)))
struct NATSFakeServerTests {
    func options(_ server: ScriptedNATSServer) -> NATSConfiguration {
        var options = NATSConfiguration(url: server.url)
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

    /// Connections are read on the reactor's thread, which serves every socket and timer of the
    /// process: a connection whose input never runs dry (a server that writes faster than the
    /// client parses) must not keep it. The flooding server has a reactor of its own, so its
    /// writes never wait for the client's.
    @Test func aConnectionThatNeverRunsDryDoesNotHoldTheReactor() async throws {
        let serverReactor = Reactor(name: "test-flood")
        defer { serverReactor.shutdown() }
        let stop = Atomic<Bool>(false)
        let server = try ScriptedNATSServer(reactor: serverReactor) { connection, _ in
            _ = try await ScriptedNATSServer.readUntil("SUB flood 1\r\n", connection)
            let chunk = ByteBuffer(string: String(repeating: "MSG flood 1 5\r\nhello\r\n", count: 3000))
            let end = ContinuousClock.now + .seconds(30)
            while !stop.load(ordering: .relaxed), ContinuousClock.now < end { try await connection.write(chunk) }
        }
        let client = try await NATSClient.connect(options(server))
        let sink = try await client.subscribe(to: "flood", pendingLimits: NATSPendingLimits(messages: 1000, bytes: -1))
        while sink.deliveredCount < 100_000 { try await Task.sleep(for: .milliseconds(1)) }
        // The shared reactor still runs its timers while the flood goes on.
        var slowest = Duration.zero
        let timersStart = ContinuousClock.now
        for _ in 0..<100 {
            let start = ContinuousClock.now
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                _ = Reactor.shared.schedule(at: .after(.milliseconds(1))) { continuation.resume() }
            }
            slowest = max(slowest, ContinuousClock.now - start)
        }
        let deliveredDuringTimers = sink.deliveredCount
        try await Task.sleep(for: .milliseconds(50))
        let deliveredAfter = sink.deliveredCount
        stop.store(true, ordering: .relaxed)
        #expect(slowest < .seconds(1), "a 1 ms timer of the shared reactor took \(slowest) beside the flood (\((ContinuousClock.now - timersStart) / 100) on average, \(sink.deliveredCount) delivered)")
        #expect(deliveredAfter > deliveredDuringTimers, "the flood was still being read")
        await client.close()
    }

    /// A server that takes a request and closes the connection: the requester, reading for its
    /// reply on its own thread, sees the end, and the request fails at once.
    @Test func aConnectionLostWhileTheRequesterReadsEndsTheRequestAtOnce() async throws {
        let server = try ScriptedNATSServer { connection, _ in
            _ = try await ScriptedNATSServer.readUntil("PUB service", connection)
            try await Task.sleep(for: .milliseconds(20))
        }
        var options = options(server)
        options.allowReconnect = false
        let client = try await NATSClient.connect(options)
        let start = ContinuousClock.now
        let error = await #expect(throws: NATSError.self) { try await client.request("x", subject: "service", timeout: .seconds(20)) }
        #expect(error?.kind == .interrupted || error?.kind == .closed, "\(String(describing: error))")
        #expect(ContinuousClock.now - start < .seconds(5))
        await client.close()
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

    @Test func aServerThatSendsGarbageAfterEveryHandshakeIsGivenUpOn() async throws {
        let accepted = Atomic<Int>(0)
        let server = try ScriptedNATSServer(connections: 10) { connection, _ in
            accepted.add(1, ordering: .relaxed)
            try await connection.write(ByteBuffer(string: "GARBAGE \u{1B}[2J\r\n"))
            try await Task.sleep(for: .milliseconds(200))
        }
        defer { server.task.cancel() }
        var options = options(server)
        options.maximumReconnectAttempts = 2
        let client = try await NATSClient.connect(options)
        let events = EventLog(client)
        #expect(try await events.waitFor { if case .closed = $0 { true } else { false } }, "the client gives up instead of reconnecting forever")
        #expect(accepted.load(ordering: .relaxed) == 3, "the first connection and two reconnects")
        let disconnects = events.all.filter { if case .disconnected(_, let reason?) = $0 { reason.kind == .protocolViolation } else { false } }
        #expect(disconnects.count == 3, "each violation is reported")
    }
}
