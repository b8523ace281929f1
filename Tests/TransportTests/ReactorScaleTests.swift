import Foundation
import Testing
@testable import Transport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Reactor at scale")
struct ReactorScaleTests {
    @Test func thousandConnectionsDoNotAddThreads() async throws {
        let reactor = Reactor(name: "test-scale")
        defer { reactor.shutdown() }
        let server = try EchoServer.start(reactor: reactor)
        defer { server.stop() }
        // Warm up: the reactor thread, the cooperative pool and the resolver exist before counting.
        var connections: [Connection] = []
        for _ in 0..<10 { connections.append(try await Connection.connect(to: server.endpoint, reactor: reactor)) }
        let threadsBefore = threadCount()
        for _ in 0..<1000 { connections.append(try await Connection.connect(to: server.endpoint, reactor: reactor)) }
        // Every connection is alive and served: one round trip on each.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in connections {
                group.addTask {
                    try await connection.write(ByteBuffer(string: "?"))
                    var buffer = ByteBuffer()
                    try await readExactly(1, from: connection, into: &buffer)
                }
            }
            try await group.waitForAll()
        }
        let threadsAfter = threadCount()
        #expect(connections.count == 1010)
        #expect(reactor.registrationCount >= 2 * 1010, "client and server ends are registered")
        // Other tests running in parallel may start a thread or two; a thread per connection would add 1,000.
        #expect(threadsAfter - threadsBefore < 16, "threads grew from \(threadsBefore) to \(threadsAfter)")
        for connection in connections { connection.close() }
        // The server side sees every close and stops reading: only the accept waiter remains.
        let deadline = ContinuousClock.now + .seconds(10)
        while reactor.pendingWaiterCount > 1 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(reactor.pendingWaiterCount == 1, "stale waiters: \(reactor.pendingWaiterCount)")
    }
}
