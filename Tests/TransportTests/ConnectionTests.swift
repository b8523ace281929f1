import Foundation
import Testing
@testable import Transport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Connection over TCP and Unix sockets")
struct ConnectionTests {
    /// A client connection to `listener` and the server side of it.
    private func connectedPair(_ listener: Listener) async throws -> (client: Connection, server: Connection) {
        async let accepted = listener.accept()
        let client = try await Connection.connect(to: listener.endpoint)
        return (client, try await accepted)
    }

    /// Closes `connection` with an RST instead of a FIN (SO_LINGER with a zero timeout).
    private func closeWithReset(_ connection: Connection) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(connection.descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        connection.close()
    }

    /// Connects to `endpoint`, expects `text` echoed back, and closes.
    private func expectEcho(via endpoint: Endpoint, _ text: String) async throws {
        let connection = try await Connection.connect(to: endpoint)
        defer { connection.close() }
        #expect(try await echo(connection, text) == text)
    }

    @Test func echoOverIPv4() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        try await expectEcho(via: server.endpoint, "ping")
    }

    @Test func echoOverIPv6() async throws {
        let server = try EchoServer.start(host: "::1")
        defer { server.stop() }
        #expect(server.endpoint.description.hasPrefix("[::1]:"))
        try await expectEcho(via: server.endpoint, "six")
    }

    @Test func hostNameTriesEveryResolvedAddress() async throws {
        // "localhost" may resolve to ::1 before 127.0.0.1; only the IPv4 address listens, so the
        // connection succeeds only if the addresses are tried in turn.
        let server = try EchoServer.start(host: "127.0.0.1")
        defer { server.stop() }
        guard case .tcp(_, let port) = server.endpoint else { return }
        try await expectEcho(via: .tcp(host: "localhost", port: port), "x")
    }

    @Test func unixDomainSocket() async throws {
        let directory = try makeTemporaryDirectory("unix")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent(".s.PGSQL.5432").path
        let server = EchoServer(listener: try Listener.bind(unixPath: path))
        defer { server.stop() }
        try await expectEcho(via: .unix(path: path), "local")
    }

    @Test func missingUnixSocketIsRefusedAndNamed() async throws {
        let path = "/tmp/does-not-exist-\(UInt32.random(in: 0...UInt32.max)).sock"
        let error = await #expect(throws: TransportError.self) {
            try await Connection.connect(to: .unix(path: path))
        }
        #expect(error?.kind == .connectionRefused)
        #expect(error?.description.contains(path) == true)
    }

    @Test func refusedConnectionNamesTheEndpoint() async throws {
        let listener = try Listener.bind()
        let endpoint = listener.endpoint
        listener.close()
        let error = await #expect(throws: TransportError.self) {
            try await Connection.connect(to: endpoint)
        }
        #expect(error?.kind == .connectionRefused)
        #expect(error?.description.contains(endpoint.description) == true, "\(String(describing: error))")
    }

    @Test func unresolvableHostIsATypedError() async throws {
        let error = await #expect(throws: TransportError.self) {
            try await Connection.connect(to: .tcp(host: "no-such-host.invalid", port: 5432))
        }
        #expect(error?.kind == .resolutionFailed)
        #expect(error?.description.contains("no-such-host.invalid") == true)
    }

    @Test func connectDeadline() async throws {
        // A listener that never accepts, with a backlog of zero: once its queue is full, further
        // SYNs are dropped and connect() stays pending until our deadline.
        let listener = try Listener.bind(backlog: 0)
        defer { listener.close() }
        var held: [Connection] = []
        defer { held.forEach { $0.close() } }
        var timedOut: TransportError?
        for _ in 0..<16 {
            do {
                held.append(try await Connection.connect(to: listener.endpoint, options: ConnectOptions(timeout: .milliseconds(200))))
            } catch let error as TransportError {
                timedOut = error
                break
            }
        }
        #expect(timedOut?.kind == .timedOut)
        #expect(timedOut?.description.contains("connect timed out") == true)
        #expect(timedOut?.description.contains(listener.endpoint.description) == true)
    }

    /// Also with an inline read wait far longer than the deadline: the deadline still ends it.
    @Test(arguments: [Duration.microseconds(250), .seconds(5)])
    func readDeadlineNamesTheEndpoint(inlineReadWait: Duration) async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint, options: ConnectOptions(inlineReadWait: inlineReadWait))
        defer { connection.close() }
        var buffer = ByteBuffer()
        let start = ContinuousClock.now
        let error = await #expect(throws: TransportError.self) {
            try await connection.read(into: &buffer, deadline: .after(.milliseconds(50)), mayWaitInline: true)
        }
        let elapsed = ContinuousClock.now - start
        #expect(error?.kind == .timedOut)
        #expect(error?.description.contains(server.endpoint.description) == true)
        #expect(elapsed >= .milliseconds(45) && elapsed < .seconds(2), "took \(elapsed)")
    }

    @Test func writeDeadlineWhenThePeerStopsReading() async throws {
        let listener = try Listener.bind()
        defer { listener.close() }
        let (connection, peer) = try await connectedPair(listener)
        defer { peer.close() }
        // The peer never reads: once both socket buffers are full the write must wait, and its
        // deadline ends it. Part of the frame went out, so the connection is closed.
        var frame = ByteBuffer()
        frame.writeRepeating(1, count: 64 << 20)
        let error = await #expect(throws: TransportError.self) {
            try await connection.write(frame, deadline: .after(.milliseconds(200)))
        }
        #expect(error?.kind == .timedOut)
        #expect(error?.description.contains("write timed out after") == true, "\(String(describing: error))")
        #expect(connection.isClosed)
    }

    @Test func cancellingAPendingReadReturnsPromptlyAndLeavesNoWaiter() async throws {
        // The client gets a reactor of its own so that the counters below see only its read.
        let reactor = Reactor(name: "test-cancel")
        defer { reactor.shutdown() }
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint, reactor: reactor)
        let reader = Task {
            var buffer = ByteBuffer()
            try await connection.read(into: &buffer, deadline: .after(.seconds(60)))
        }
        // Let the read reach the reactor, then cancel it.
        while reactor.pendingWaiterCount == 0 { try await Task.sleep(for: .milliseconds(1)) }
        let start = ContinuousClock.now
        reader.cancel()
        let result = await reader.result
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .milliseconds(100))
        #expect(throws: TransportError.self) { try result.get() }
        if case .failure(let error as TransportError) = result { #expect(error.kind == .cancelled) }
        // Nothing left behind in the reactor: no waiter, no timer.
        #expect(reactor.pendingWaiterCount == 0)
        #expect(reactor.pendingTimerCount == 0)
        // The connection still works after a cancelled read.
        #expect(try await echo(connection, "still here") == "still here")
        let before = reactor.registrationCount
        connection.close()
        #expect(reactor.registrationCount == before - 1)
    }

    @Test func closeWakesPendingReadAndIsIdempotent() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint)
        let reader = Task {
            var buffer = ByteBuffer()
            try await connection.read(into: &buffer)
        }
        try await Task.sleep(for: .milliseconds(20))
        connection.close()
        connection.close()
        let result = await reader.result
        if case .failure(let error as TransportError) = result {
            #expect(error.kind == .closed)
        } else {
            Issue.record("a read pending at close must fail with .closed, got \(result)")
        }
        var buffer = ByteBuffer()
        await #expect(throws: TransportError.self) { try await connection.read(into: &buffer) }
        await #expect(throws: TransportError.self) { try await connection.write(ByteBuffer(string: "x")) }
    }

    @Test func endOfStreamWhenPeerCloses() async throws {
        let listener = try Listener.bind()
        defer { listener.close() }
        let (connection, peer) = try await connectedPair(listener)
        defer { connection.close() }
        peer.close()
        var buffer = ByteBuffer()
        let error = await #expect(throws: TransportError.self) { try await connection.read(into: &buffer) }
        #expect(error?.kind == .endOfStream)
        #expect(error?.description.contains(listener.endpoint.description) == true)
    }

    @Test func lastBytesAndTheCloseInOneEdgeStillEndTheStream() async throws {
        let listener = try Listener.bind()
        defer { listener.close() }
        let (connection, peer) = try await connectedPair(listener)
        defer { connection.close() }
        // The peer's last bytes and its FIN arrive before the first read: one readiness edge
        // carries both, and the read that takes the bytes comes back short.
        try await peer.write(ByteBuffer(string: "last words"))
        peer.close()
        try await Task.sleep(for: .milliseconds(50))
        var buffer = ByteBuffer()
        try await readExactly(10, from: connection, into: &buffer)
        #expect(String(decoding: buffer.readableBytesView, as: UTF8.self) == "last words")
        let error = await #expect(throws: TransportError.self) {
            try await connection.read(into: &buffer, deadline: .after(.seconds(2)))
        }
        #expect(error?.kind == .endOfStream, "a read after the last bytes waited for an edge that never comes: \(String(describing: error))")
    }

    @Test func resetByPeerAndBrokenPipeAreTypedAndDoNotKillTheProcess() async throws {
        let listener = try Listener.bind()
        defer { listener.close() }
        let (connection, peer) = try await connectedPair(listener)
        defer { connection.close() }
        closeWithReset(peer)
        try await Task.sleep(for: .milliseconds(20))
        // Writing to a reset connection: ECONNRESET or EPIPE, never SIGPIPE.
        var kinds: [TransportError.Kind] = []
        for _ in 0..<3 {
            do {
                try await connection.write(ByteBuffer(string: "data"))
            } catch let error as TransportError {
                kinds.append(error.kind)
            }
        }
        #expect(!kinds.isEmpty)
        #expect(kinds.allSatisfy { $0 == .connectionReset || $0 == .brokenPipe }, "\(kinds)")
    }

    @Test func readAfterResetIsConnectionReset() async throws {
        let listener = try Listener.bind()
        defer { listener.close() }
        let (connection, peer) = try await connectedPair(listener)
        defer { connection.close() }
        try await connection.write(ByteBuffer(string: "unread"))  // unread data at close also forces RST
        try await Task.sleep(for: .milliseconds(10))
        closeWithReset(peer)
        var buffer = ByteBuffer()
        let error = await #expect(throws: TransportError.self) { try await connection.read(into: &buffer) }
        #expect(error?.kind == .connectionReset)
        #expect(error?.errno == ECONNRESET)
    }

    @Test func severalBuffersGoOutInOneSystemCall() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint)
        defer { connection.close() }
        let frames = (0..<10).map { ByteBuffer(string: "frame\($0);") }
        let before = connection.writeSystemCallCount
        try await connection.write(frames)
        #expect(connection.writeSystemCallCount - before == 1)
        let expected = frames.map { String(decoding: $0.readableBytesView, as: UTF8.self) }.joined()
        var buffer = ByteBuffer()
        try await readExactly(expected.utf8.count, from: connection, into: &buffer)
        #expect(String(decoding: buffer.readableBytesView, as: UTF8.self) == expected)
    }

    @Test func largeTransferBothWaysThroughBackPressure() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint)
        defer { connection.close() }
        let payload = {
            var payload = ByteBuffer(capacity: 8 << 20)
            for index in 0..<(8 << 20) / 4 { payload.writeInteger(UInt32(truncatingIfNeeded: index &* 2_654_435_761)) }
            return payload
        }()
        let total = payload.readableBytes
        let halves = [payload.getSlice(at: 0, count: total / 2)!, payload.getSlice(at: total / 2, count: total / 2)!]
        // Write the 8 MiB in one call while reading the echo concurrently: the writer meets EAGAIN
        // and must wait on the reactor; the reader must keep up.
        async let written: Void = connection.write(halves)
        var received = ByteBuffer(capacity: total)
        try await readExactly(total, from: connection, into: &received, deadline: .after(.seconds(30)))
        try await written
        #expect(received == payload)
    }

    @Test func concurrentWritersAreSerializedWithoutInterleaving() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint)
        defer { connection.close() }
        let chunk = 64 * 1024
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    var frame = ByteBuffer()
                    frame.writeRepeating(UInt8(writer), count: chunk)
                    try await connection.write(frame)
                }
            }
            var received = ByteBuffer()
            try await readExactly(8 * chunk, from: connection, into: &received, deadline: .after(.seconds(30)))
            try await group.waitForAll()
            var seen = Set<UInt8>()
            for frameIndex in 0..<8 {
                let frame = Array(received.readableBytesView.dropFirst(frameIndex * chunk).prefix(chunk))
                #expect(Set(frame).count == 1, "frame \(frameIndex) interleaves writers")
                seen.insert(frame[0])
            }
            #expect(seen.count == 8)
        }
    }

    @Test func concurrentReadIsRefusedNotLost() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint)
        defer { connection.close() }
        let first = Task {
            var buffer = ByteBuffer()
            try await connection.read(into: &buffer, deadline: .after(.seconds(5)))
            return buffer
        }
        try await Task.sleep(for: .milliseconds(20))
        var second = ByteBuffer()
        let error = await #expect(throws: TransportError.self) {
            try await connection.read(into: &second, deadline: .after(.seconds(5)))
        }
        #expect(error?.kind == .concurrentOperation)
        try await connection.write(ByteBuffer(string: "ok"))
        let got = try await first.value
        #expect(got.readableBytes >= 1)
    }
}
