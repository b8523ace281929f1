import Foundation
import Synchronization
import Testing
@testable import Transport

#if canImport(Glibc)
import Glibc
#endif

/// A reader driven by ``Connection/whenReadable(_:)``, as the NATS client reads: it collects
/// what arrives and records the name of each thread it ran on.
private final class CollectingReader: Sendable {
    struct State {
        var bytes: [UInt8] = []
        var threads: Set<String> = []
        var failure: TransportError?
        var handlerCalls = 0
    }

    let connection: Connection
    let state = Mutex(State())

    init(connection: Connection) {
        self.connection = connection
    }

    func start() { drain(nil) }

    private func drain(_ error: TransportError?) {
        state.withLock { state in
            state.handlerCalls += 1
            state.threads.insert(currentThreadName())
        }
        if let error {
            state.withLock { $0.failure = error }
            return
        }
        var buffer = ByteBuffer(capacity: 64)
        do throws(TransportError) {
            while true {
                if try connection.whenReadable({ [self] error in drain(error) }) { return }
                buffer.clear()
                // A small read size, so that a burst takes several reads and full ones.
                _ = try connection.receiveAvailable(into: &buffer, maximumBytes: 7)
                let read = Array(buffer.readableBytesView)
                state.withLock { $0.bytes += read }
            }
        } catch {
            state.withLock { $0.failure = error }
        }
    }
}

/// A connected pair on loopback: our client connection and the accepted server side.
private func connectedPair(reactor: Reactor) async throws -> (client: Connection, server: Connection, listener: Listener) {
    let listener = try Listener.bind(host: "127.0.0.1", port: 0, reactor: reactor)
    async let accepted = listener.accept(deadline: .after(.seconds(10)))
    let client = try await Connection.connect(to: listener.endpoint, options: ConnectOptions(inlineReadWait: .zero), reactor: reactor)
    return (client, try await accepted, listener)
}

@Suite("Reading on the reactor's thread")
struct ReactorReadingTests {
    @Test func everyByteReachesTheHandlerOnTheReactorsThreadAndTheEndIsReported() async throws {
        let reactor = Reactor(name: "test-onreactor")
        defer { reactor.shutdown() }
        let (client, server, listener) = try await connectedPair(reactor: reactor)
        defer { listener.close() }
        defer { client.close() }
        let reader = CollectingReader(connection: client)
        reader.start()
        var expected: [UInt8] = []
        for index in 0..<200 {
            let chunk = Array("chunk \(index);".utf8)
            expected += chunk
            try await server.write(ByteBuffer(bytes: chunk))
            if index % 20 == 0 { try await Task.sleep(for: .milliseconds(2)) }
        }
        #expect(try await eventually(within: .seconds(10)) { reader.state.withLock { $0.bytes.count } >= expected.count })
        server.close()
        #expect(try await eventually(within: .seconds(10)) { reader.state.withLock { $0.failure != nil } })
        let state = reader.state.withLock { $0 }
        #expect(state.bytes == expected)
        #expect(state.failure?.kind == .endOfStream, "\(String(describing: state.failure))")
        // The first run is the caller's; every later one is the reactor's.
        #expect(state.handlerCalls > 1)
        #expect(state.threads.subtracting([currentThreadName()]).allSatisfy { $0 == "test-onreactor" }, "\(state.threads)")
        #expect(state.threads.contains("test-onreactor"))
    }

    @Test func theHandlerIsNotStoredWhileInputIsLeftAndIsStoredOnceTheSocketIsEmpty() async throws {
        let reactor = Reactor(name: "test-onreactor")
        defer { reactor.shutdown() }
        let (client, server, listener) = try await connectedPair(reactor: reactor)
        defer { listener.close() }
        defer { client.close() }
        defer { server.close() }
        let handled = Atomic<Int>(0)
        let handler: @Sendable (TransportError?) -> Void = { _ in handled.add(1, ordering: .relaxed) }
        let eventsBefore = reactor.socketEventCount
        try await server.write(ByteBuffer(bytes: Array("0123456789".utf8)))
        // The reactor sees the input's edge before the reads below: an edge counted after the
        // last read would rightly keep the handler from being stored.
        _ = try await eventually(within: .seconds(10)) { reactor.socketEventCount > eventsBefore }
        var buffer = ByteBuffer()
        // Nothing read yet: more may be there, so the caller is told to read first.
        #expect(try client.whenReadable(handler) == false)
        var received = 0
        while received == 0 {
            received = try client.receiveAvailable(into: &buffer, maximumBytes: 4)
            if received == 0 { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(received == 4)
        // A full read: the rest may be waiting.
        #expect(try client.whenReadable(handler) == false)
        #expect(try client.receiveAvailable(into: &buffer, maximumBytes: 4) == 4)
        #expect(try client.whenReadable(handler) == false)
        #expect(try client.receiveAvailable(into: &buffer, maximumBytes: 4) == 2)
        // A short read emptied the socket: now the handler waits.
        #expect(try client.whenReadable(handler) == true)
        #expect(String(decoding: buffer.readableBytesView, as: UTF8.self) == "0123456789")
        #expect(handled.load(ordering: .relaxed) == 0)
        // A second reader is refused while the handler waits.
        var other = ByteBuffer()
        await #expect(throws: TransportError.self) { try await client.read(into: &other, deadline: .after(.seconds(1))) }
        try await server.write(ByteBuffer(bytes: [1]))
        #expect(try await eventually(within: .seconds(10)) { handled.load(ordering: .relaxed) == 1 })
        #expect(try client.receiveAvailable(into: &buffer, maximumBytes: 4) == 1)
    }

    @Test func closingTheConnectionHandsTheWaitingHandlerTheError() async throws {
        let reactor = Reactor(name: "test-onreactor")
        defer { reactor.shutdown() }
        let (client, server, listener) = try await connectedPair(reactor: reactor)
        defer { listener.close() }
        defer { server.close() }
        let failure = Mutex<TransportError?>(nil)
        var buffer = ByteBuffer()
        #expect(try client.receiveAvailable(into: &buffer) == 0)
        #expect(try client.whenReadable { error in failure.withLock { $0 = error } })
        #expect(reactor.pendingWaiterCount == 1)
        client.close()
        #expect(failure.withLock { $0?.kind } == .closed)
        #expect(reactor.pendingWaiterCount == 0)
        // The next read says so too.
        #expect(throws: TransportError.self) { try client.receiveAvailable(into: &buffer) }
    }
}
