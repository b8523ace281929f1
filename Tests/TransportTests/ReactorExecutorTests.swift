import Foundation
import Synchronization
import Testing
@testable import Transport

#if canImport(Glibc)
import Glibc
#endif

@Suite("The reactor as a task executor", .timeLimit(.minutes(1)))
struct ReactorExecutorTests {
    @Test func aTaskThatPrefersTheReactorRunsOnItsThreadThroughEveryReadAndWrite() async throws {
        let reactor = Reactor(name: "test-executor")
        defer { reactor.shutdown() }
        let listener = try Listener.bind(host: "127.0.0.1", port: 0, reactor: reactor)
        defer { listener.close() }
        // An echo peer on the cooperative pool.
        let peer = Task {
            let server = try await listener.accept(deadline: .after(.seconds(10)))
            defer { server.close() }
            var buffer = ByteBuffer(capacity: 256)
            while true {
                buffer.clear()
                do { try await server.read(into: &buffer) } catch { return }
                try await server.write(buffer)
            }
        }
        // The default inline budget: a read on the reactor's thread must still not wait inline.
        let client = try await Connection.connect(to: listener.endpoint, options: ConnectOptions(), reactor: reactor)
        defer { client.close() }
        let jobsBefore = reactor.executorJobCount
        let refusalsBefore = reactor.inlineWaitRefusalCount
        let inlineWaitsBefore = reactor.inlineWaitCount
        let (threads, replies) = try await Task(executorPreference: reactor) {
            var threads: Set<String> = [currentThreadName()]
            var replies: [String] = []
            var reply = ByteBuffer(capacity: 256)
            for index in 0..<200 {
                let text = "ping \(index)"
                try await client.write(ByteBuffer(bytes: Array(text.utf8)))
                reply.clear()
                while reply.readableBytes < text.utf8.count {
                    try await client.read(into: &reply, mayWaitInline: true)
                    threads.insert(currentThreadName())
                    #expect(reactor.isReactorThread)
                }
                replies.append(String(decoding: reply.readableBytesView, as: UTF8.self))
            }
            return (threads, replies)
        }.value
        #expect(replies == (0..<200).map { "ping \($0)" })
        #expect(threads == ["test-executor"])
        // Each round trip suspended and was resumed as a job of the reactor's, and every read
        // that asked for an inline wait was refused one: no wait ever held the polling thread.
        #expect(reactor.executorJobCount - jobsBefore >= 200)
        #expect(reactor.inlineWaitRefusalCount - refusalsBefore >= 200)
        #expect(reactor.inlineWaitCount == inlineWaitsBefore)
        #expect(!reactor.isReactorThread)
        peer.cancel()
    }

    @Test func aJobEnqueuedFromAnotherThreadWakesASleepingReactorAtOnce() async throws {
        let reactor = Reactor(name: "test-executor")
        defer { reactor.shutdown() }
        // Let the reactor fall asleep: idle, it sleeps up to a second in epoll_wait.
        try await Task.sleep(for: .milliseconds(50))
        var slowest: Duration = .zero
        for _ in 0..<20 {
            let start = ContinuousClock.now
            let ranThere = await Task(executorPreference: reactor) { reactor.isReactorThread }.value
            #expect(ranThere)
            slowest = max(slowest, ContinuousClock.now - start)
            try await Task.sleep(for: .milliseconds(5))
        }
        // Without the wake-up each would wait for the idle tick (one second).
        #expect(slowest < .milliseconds(500), "slowest hop onto the reactor: \(slowest)")
    }

    @Test func aTaskThatPrefersAReactorThatWasShutDownStillRuns() async throws {
        let reactor = Reactor(name: "test-executor")
        #expect(await Task(executorPreference: reactor) { reactor.isReactorThread }.value)
        reactor.shutdown()
        // The thread ends once it has nothing registered; wait until a job no longer runs there.
        var ranOnReactor = true
        let start = ContinuousClock.now
        while ranOnReactor, ContinuousClock.now - start < .seconds(10) {
            try await Task.sleep(for: .milliseconds(10))
            ranOnReactor = await Task(executorPreference: reactor) { reactor.isReactorThread }.value
        }
        #expect(!ranOnReactor, "the reactor's thread kept running jobs after its shutdown")
        // Later tasks run elsewhere instead of never.
        let answer = await Task(executorPreference: reactor) { 6 * 7 }.value
        #expect(answer == 42)
    }

    @Test func manyTasksShareTheReactorAndTimersStillFire() async throws {
        let reactor = Reactor(name: "test-executor")
        defer { reactor.shutdown() }
        final class Counts: Sendable {
            let steps = Atomic<Int>(0)
            let offThread = Atomic<Int>(0)
            let fired = Atomic<Bool>(false)
        }
        let counts = Counts()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask(executorPreference: reactor) {
                    for _ in 0..<100 {
                        counts.steps.add(1, ordering: .relaxed)
                        if !reactor.isReactorThread { counts.offThread.add(1, ordering: .relaxed) }
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(counts.steps.load(ordering: .relaxed) == 5_000)
        #expect(counts.offThread.load(ordering: .relaxed) == 0)
        _ = reactor.schedule(at: .after(.milliseconds(1))) { counts.fired.store(true, ordering: .relaxed) }
        #expect(try await eventually(within: .seconds(5)) { counts.fired.load(ordering: .relaxed) })
    }
}
