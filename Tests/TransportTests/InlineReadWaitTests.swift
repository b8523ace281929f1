import Foundation
import Synchronization
import Testing
@testable import Transport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Inline read waits")
struct InlineReadWaitTests {
    /// Whether this machine grants inline waits at all (one processor: never).
    static let granted = sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1

    /// Inline waits happen when the connection allows them and the reader asks for them.
    @Test(arguments: [(Duration.microseconds(250), true), (.zero, true), (.microseconds(250), false)])
    func roundTripsWaitOnTheirOwnThreadWhenEnabled(budget: Duration, mayWaitInline: Bool) async throws {
        // The client has a reactor of its own: its counters see only the client's reads.
        let reactor = Reactor(name: "test-inline")
        defer { reactor.shutdown() }
        let server = try EchoServer.start()
        defer { server.stop() }
        // Another socket of the reactor sits parked, as a subscriber would: that does not stop it.
        let idle = try await Connection.connect(to: server.endpoint, options: ConnectOptions(inlineReadWait: .zero), reactor: reactor)
        defer { idle.close() }
        let parked = Task {
            var buffer = ByteBuffer()
            try await idle.read(into: &buffer, deadline: .after(.seconds(30)))
        }
        defer { parked.cancel() }
        #expect(try await eventually(within: .seconds(5)) { reactor.pendingWaiterCount == 1 })
        let connection = try await Connection.connect(to: server.endpoint, options: ConnectOptions(inlineReadWait: budget), reactor: reactor)
        defer { connection.close() }
        for index in 0..<50 {
            #expect(try await echo(connection, "round \(index)", mayWaitInline: mayWaitInline) == "round \(index)")
        }
        if budget > .zero && mayWaitInline && Self.granted {
            #expect(reactor.inlineWaitCount >= 25, "only \(reactor.inlineWaitCount) of 50 reads waited inline")
            #expect(reactor.inlineWaitHitCount >= 1, "no inline wait ended with its reply")
        } else {
            #expect(reactor.inlineWaitCount == 0)
        }
    }

    /// While a reader waits inline, the reactor does not watch its socket for input: the reply
    /// wakes only the waiting thread, not the reactor's as well (a second context switch per
    /// round trip). A read that suspends afterwards watches again and misses nothing, data that
    /// came while nobody watched included.
    @Test(.enabled(if: granted, "inline waits need a second processor"))
    func inlineRoundTripsDoNotWakeTheReactorAndLaterReadsStillDo() async throws {
        let reactor = Reactor(name: "test-inline-quiet")
        defer { reactor.shutdown() }
        let listener = try Listener.bind()
        defer { listener.close() }
        async let accepted = listener.accept()
        let connection = try await Connection.connect(to: listener.endpoint, options: ConnectOptions(inlineReadWait: .seconds(1)), reactor: reactor)
        let peer = try await accepted
        defer { connection.close(); peer.close() }
        let before = reactor.socketEventCount
        var reply = ByteBuffer()
        var request = ByteBuffer()
        for index in 0..<200 {
            try await connection.write(ByteBuffer(string: "\(index % 10)"))
            request.clear()
            try await peer.read(into: &request, deadline: .after(.seconds(5)))
            try await peer.write(request)
            reply.clear()
            try await connection.read(into: &reply, deadline: .after(.seconds(5)), mayWaitInline: true)
            #expect(reply.readableBytes == 1)
        }
        let events = reactor.socketEventCount - before
        #expect(events < 20, "the reactor woke \(events) times for 200 inline round trips")
        #expect(reactor.inlineWaitHitCount > 150)
        // Data that arrives while input is unwatched, read by a reader that suspends.
        try await peer.write(ByteBuffer(string: "unwatched"))
        try await Task.sleep(for: .milliseconds(20))
        reply.clear()
        try await readExactly(9, from: connection, into: &reply)
        #expect(String(decoding: reply.readableBytesView, as: UTF8.self) == "unwatched")
        // And data that arrives after the suspended reader re-armed the socket.
        let pending = Task {
            var buffer = ByteBuffer()
            try await readExactly(5, from: connection, into: &buffer)
            return String(decoding: buffer.readableBytesView, as: UTF8.self)
        }
        try await Task.sleep(for: .milliseconds(20))
        try await peer.write(ByteBuffer(string: "later"))
        #expect(try await pending.value == "later")
        // The peer's close is seen while input is unwatched too.
        try await connection.write(ByteBuffer(string: "x"))
        request.clear()
        try await peer.read(into: &request, deadline: .after(.seconds(5)))
        peer.close()
        reply.clear()
        await #expect(throws: TransportError.self) { try await connection.read(into: &reply, deadline: .after(.seconds(5)), mayWaitInline: true) }
    }

    @Test(.enabled(if: granted, "inline waits need a second processor"))
    func aWaitGivesItsThreadBackWhenTheReactorResumesAnotherTask() async throws {
        let reactor = Reactor(name: "test-inline-give")
        defer { reactor.shutdown() }
        let listener = try Listener.bind()
        defer { listener.close() }
        async let acceptedQuiet = listener.accept()
        let quiet = try await Connection.connect(to: listener.endpoint, options: ConnectOptions(inlineReadWait: .seconds(5)), reactor: reactor)
        let quietPeer = try await acceptedQuiet
        async let acceptedOther = listener.accept()
        let other = try await Connection.connect(to: listener.endpoint, reactor: reactor)
        let otherPeer = try await acceptedOther
        defer { for connection in [quiet, quietPeer, other, otherPeer] { connection.close() } }

        let otherRead = Task {
            var buffer = ByteBuffer()
            return try await other.read(into: &buffer, deadline: .after(.seconds(30)))
        }
        #expect(try await eventually(within: .seconds(5)) { reactor.pendingWaiterCount == 1 })
        // The reactor resumed the connects just now: it counts as busy for a millisecond after.
        try await Task.sleep(for: .milliseconds(5))
        // The quiet read gets nothing: it waits inline, for up to 5 seconds.
        let quietRead = Task {
            var buffer = ByteBuffer()
            return try await quiet.read(into: &buffer, deadline: .after(.seconds(30)), mayWaitInline: true)
        }
        #expect(try await eventually(within: .seconds(5)) { reactor.inlineWaitCount == 1 })
        try await Task.sleep(for: .milliseconds(20))
        #expect(reactor.pendingWaiterCount == 1, "the quiet read is waiting inline, not on the reactor")
        // The reactor resumes the other read: the inline wait must give its thread back and park.
        try await otherPeer.write(ByteBuffer(string: "x"))
        #expect(try await otherRead.value == 1)
        let parked = try await eventually(within: .seconds(1)) { reactor.pendingWaiterCount == 1 }
        #expect(parked, "the inline wait held its thread after another task was resumed")
        #expect(reactor.inlineWaitHitCount == 0)
        try await quietPeer.write(ByteBuffer(string: "y"))
        #expect(try await quietRead.value == 1)
    }

    @Test func closeEndsAnInlineWaitAtOnce() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint, options: ConnectOptions(inlineReadWait: .seconds(5)))
        let reader = Task {
            var buffer = ByteBuffer()
            try await connection.read(into: &buffer, deadline: .after(.seconds(30)), mayWaitInline: true)
        }
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        connection.close()
        let result = await reader.result
        #expect(ContinuousClock.now - start < .seconds(1), "the read outlived its socket's close")
        if case .failure(let error as TransportError) = result {
            #expect(error.kind == .closed)
        } else {
            Issue.record("a read pending at close must fail with .closed, got \(result)")
        }
    }

    /// With a budget of a few milliseconds the inline wait is a blocking `recv` on a socket
    /// whose O_NONBLOCK is cleared. A close during that `recv` ends it as a close, never as the
    /// peer's end of stream; and nothing else on the socket ever blocks: a write the peer does
    /// not read still times out at its deadline.
    @Test func aBlockingInlineWaitEndsAtACloseAndOtherCallsNeverBlock() async throws {
        let listener = try Listener.bind()
        defer { listener.close() }
        for attempt in 0..<50 {
            async let accepted = listener.accept()
            let connection = try await Connection.connect(to: listener.endpoint, options: ConnectOptions(inlineReadWait: .milliseconds(8)))
            let peer = try await accepted
            defer { peer.close() }
            let reader = Task {
                var buffer = ByteBuffer()
                while true { try await connection.read(into: &buffer, deadline: .after(.seconds(30)), mayWaitInline: true) }
            }
            try await Task.sleep(for: .microseconds(200 * (attempt % 10)))
            connection.close()
            let result = await reader.result
            guard case .failure(let error as TransportError) = result else {
                Issue.record("a read pending at close must fail, got \(result)")
                continue
            }
            #expect(error.kind == .closed, "attempt \(attempt): \(error)")
        }
        // Writes to a peer that reads nothing fill the socket and then wait on the reactor.
        async let accepted = listener.accept()
        let connection = try await Connection.connect(to: listener.endpoint, options: ConnectOptions(inlineReadWait: .milliseconds(4)))
        let peer = try await accepted
        defer { connection.close(); peer.close() }
        // A round trip first: the blocking wait reads the reply.
        try await connection.write(ByteBuffer(string: "ping"))
        var request = ByteBuffer()
        try await readExactly(4, from: peer, into: &request)
        try await peer.write(request)
        var reply = ByteBuffer()
        try await readExactly(4, from: connection, into: &reply, mayWaitInline: true)
        #expect(String(decoding: reply.readableBytesView, as: UTF8.self) == "ping")
        let block = ByteBuffer(bytes: [UInt8](repeating: 0x7A, count: 1 << 20))
        var sentNow = 0
        for _ in 0..<256 {
            let sent = try connection.sendNow(block)
            sentNow += sent
            if sent < block.readableBytes { break }
        }
        #expect(sentNow < 256 << 20, "sendNow kept taking bytes the peer never read")
        let start = ContinuousClock.now
        await #expect(throws: TransportError.self) {
            for _ in 0..<64 { try await connection.write(block, deadline: .after(.milliseconds(300))) }
        }
        #expect(ContinuousClock.now - start < .seconds(5), "a write blocked past its deadline")
    }

    @Test func cancellationEndsAReadWithALongInlineBudget() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint, options: ConnectOptions(inlineReadWait: .milliseconds(20)))
        defer { connection.close() }
        let reader = Task {
            var buffer = ByteBuffer()
            try await connection.read(into: &buffer, deadline: .after(.seconds(60)), mayWaitInline: true)
        }
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        reader.cancel()
        let result = await reader.result
        #expect(ContinuousClock.now - start < .seconds(1))
        if case .failure(let error as TransportError) = result {
            #expect(error.kind == .cancelled)
        } else {
            Issue.record("a cancelled read must fail with .cancelled, got \(result)")
        }
        #expect(try await echo(connection, "after", mayWaitInline: true) == "after")
    }

    /// The busy rule: another socket's task resumed within the last millisecond; the claimant's
    /// own, or a resumption older than that, does not count.
    @Test func theReactorCountsAsBusyOnlyForOtherSocketsWithinAMillisecond() {
        let now: UInt64 = 10_000_000_000
        #expect(!Reactor.isBusy(now: now, lastResumeAt: 0, lastResumedID: 0, claimant: 7), "never resumed anything")
        #expect(Reactor.isBusy(now: now, lastResumeAt: now - 500_000, lastResumedID: 8, claimant: 7))
        #expect(Reactor.isBusy(now: now, lastResumeAt: now - 500_000, lastResumedID: .max, claimant: 7), "several, or a timer")
        #expect(!Reactor.isBusy(now: now, lastResumeAt: now - 500_000, lastResumedID: 7, claimant: 7), "its own socket")
        #expect(!Reactor.isBusy(now: now, lastResumeAt: now - Reactor.busyWindow, lastResumedID: 8, claimant: 7))
        // A resumption stamped after the claimant read its clock (the reactor's thread raced it).
        #expect(!Reactor.isBusy(now: now, lastResumeAt: now + 1_000, lastResumedID: 8, claimant: 7))
    }

    /// While the reactor keeps resuming other connections' tasks (a pool under load), a read
    /// that may wait inline is refused and suspends as usual; once the others stop, it waits
    /// inline again, its own resumptions notwithstanding.
    @Test(.enabled(if: granted, "inline waits need a second processor"))
    func aReactorBusyWithOtherConnectionsRefusesInlineWaits() async throws {
        let reactor = Reactor(name: "test-inline-busy")
        defer { reactor.shutdown() }
        let server = try EchoServer.start()
        defer { server.stop() }
        let connection = try await Connection.connect(to: server.endpoint, reactor: reactor)
        defer { connection.close() }
        let others = try await withThrowingTaskGroup(of: Connection.self) { group in
            for _ in 0..<4 { group.addTask { try await Connection.connect(to: server.endpoint, reactor: reactor) } }
            return try await group.reduce(into: [Connection]()) { $0.append($1) }
        }
        defer { for other in others { other.close() } }
        final class Flag: Sendable { let raised = Atomic<Bool>(false) }
        let stop = Flag()
        let load = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for other in others {
                    group.addTask { while !stop.raised.load(ordering: .relaxed) { _ = try await echo(other, "load") } }
                }
                try await group.waitForAll()
            }
        }
        try await Task.sleep(for: .milliseconds(20))
        let (waitsBefore, refusalsBefore) = (reactor.inlineWaitCount, reactor.inlineWaitRefusalCount)
        for index in 0..<50 { #expect(try await echo(connection, "busy \(index)", mayWaitInline: true) == "busy \(index)") }
        let refused = reactor.inlineWaitRefusalCount - refusalsBefore
        let waited = reactor.inlineWaitCount - waitsBefore
        stop.raised.store(true, ordering: .relaxed)
        try await load.value
        #expect(refused >= 10, "only \(refused) of 50 reads were refused while 4 other connections kept the reactor busy")
        #expect(waited < 50 - 10, "\(waited) of 50 reads waited inline beside a busy reactor")

        try await Task.sleep(for: .milliseconds(5))
        let quietBefore = reactor.inlineWaitCount
        for index in 0..<50 { #expect(try await echo(connection, "quiet \(index)", mayWaitInline: true) == "quiet \(index)") }
        let quiet = reactor.inlineWaitCount - quietBefore
        #expect(quiet >= 25, "only \(quiet) of 50 reads waited inline on a quiet reactor")
    }
}
