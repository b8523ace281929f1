import Infra
import TestSupport
import Testing

/// Time for the pool's logic, moved by hand.
struct FakeInstant: InstantProtocol {
    var offset: Duration

    static let zero = FakeInstant(offset: .zero)

    func advanced(by duration: Duration) -> FakeInstant { FakeInstant(offset: offset + duration) }
    func duration(to other: FakeInstant) -> Duration { other.offset - offset }
    static func < (lhs: FakeInstant, rhs: FakeInstant) -> Bool { lhs.offset < rhs.offset }
}

typealias Machine = PoolStateMachine<FakeInstant>

extension Array where Element == Machine.Action {
    var opened: [Int] { compactMap { if case .open(let id) = $0 { return id } else { return nil } } }
    var closed: [Int] { compactMap { if case .close(let id) = $0 { return id } else { return nil } } }
    var leases: [(connection: Int, waiter: UInt64, check: Bool)] {
        compactMap { if case .lease(let connection, let waiter, let check) = $0 { return (connection, waiter, check) } else { return nil } }
    }
    var failures: [(waiter: UInt64, error: PoolError)] {
        compactMap { if case .fail(let waiter, let error) = $0 { return (waiter, error) } else { return nil } }
    }
}

@Suite("Connection pool state machine")
struct PoolStateMachineTests {
    static func configuration(minimum: Int = 0, maximum: Int = 10) -> PoolConfiguration {
        var configuration = PoolConfiguration(minimumConnections: minimum, maximumConnections: maximum)
        configuration.maximumConcurrentOpens = 4
        configuration.acquireTimeout = .seconds(2)
        configuration.idleTimeout = .seconds(60)
        configuration.maximumLifetime = nil
        configuration.healthCheckAfterIdle = .seconds(30)
        return configuration
    }

    let t0 = FakeInstant.zero

    @Test func theMinimumIsOpenedAheadAndInParallel() {
        var machine = Machine(configuration: Self.configuration(minimum: 3))
        let actions = machine.tick(now: t0)
        #expect(actions.opened == [0, 1, 2], "three opens at once, not one after another")
        #expect(machine.openingCount == 3)
        #expect(machine.tick(now: t0.advanced(by: .seconds(1))).opened.isEmpty, "nothing more while they open")
    }

    @Test func aBurstOpensSeveralConnectionsAtOnceUpToTheMaximumAndServesWaitersInOrder() {
        var machine = Machine(configuration: Self.configuration())
        var opened: [Int] = []
        for waiter in 0..<50 as Range<UInt64> {
            opened += machine.acquire(waiter, now: t0, deadline: t0.advanced(by: .seconds(2))).opened
        }
        #expect(opened == [0, 1, 2, 3], "four parallel opens for the burst")
        var served: [UInt64] = []
        var pending = opened
        while let connection = pending.first {
            pending.removeFirst()
            let actions = machine.connectionOpened(connection, now: t0, expiresAt: nil)
            served += actions.leases.map(\.waiter)
            pending += actions.opened
        }
        #expect(machine.total == 10, "up to the maximum and no further")
        #expect(served == Array(0..<10), "first come, first served")
        // A returned connection goes to the next waiter in line.
        let next = machine.release(0, reusable: true, now: t0)
        #expect(next.leases.map(\.waiter) == [10])
        #expect(machine.waitingCount == 39)
    }

    @Test func aCancelledWaiterLeavesTheQueueAtOnce() {
        var machine = Machine(configuration: Self.configuration(maximum: 1))
        _ = machine.acquire(1, now: t0, deadline: t0.advanced(by: .seconds(2)))
        _ = machine.connectionOpened(0, now: t0, expiresAt: nil)
        _ = machine.acquire(2, now: t0, deadline: t0.advanced(by: .seconds(2)))
        _ = machine.acquire(3, now: t0, deadline: t0.advanced(by: .seconds(2)))
        let cancelled = machine.cancel(2)
        #expect(cancelled.failures.map(\.waiter) == [2] && cancelled.failures.first?.error.kind == .cancelled)
        #expect(machine.waitingCount == 1)
        #expect(machine.release(0, reusable: true, now: t0).leases.map(\.waiter) == [3], "the cancelled one is skipped")
        #expect(machine.cancel(2).isEmpty, "a second cancel changes nothing")
    }

    @Test func aWaiterPastItsDeadlineFailsWithTheCountsInTheMessage() {
        var machine = Machine(configuration: Self.configuration(maximum: 2))
        for waiter in 0..<2 as Range<UInt64> { _ = machine.acquire(waiter, now: t0, deadline: t0.advanced(by: .seconds(2))) }
        _ = machine.connectionOpened(0, now: t0, expiresAt: nil)
        _ = machine.connectionOpened(1, now: t0, expiresAt: nil)
        _ = machine.acquire(7, now: t0, deadline: t0.advanced(by: .seconds(2)))
        _ = machine.acquire(8, now: t0.advanced(by: .seconds(1)), deadline: t0.advanced(by: .seconds(3)))
        #expect(machine.tick(now: t0.advanced(by: .milliseconds(1999))).failures.isEmpty)
        let failures = machine.tick(now: t0.advanced(by: .seconds(2))).failures
        #expect(failures.map(\.waiter) == [7])
        let message = failures.first?.error.message ?? ""
        #expect(failures.first?.error.kind == .timedOut)
        #expect(message.contains("2000 ms") && message.contains("2 of 2 in use") && message.contains("1 more callers waiting"), "\(message)")
    }

    @Test func idleConnectionsAboveTheMinimumCloseAfterTheIdleTimeout() {
        var machine = Machine(configuration: Self.configuration(minimum: 1))
        for waiter in 0..<3 as Range<UInt64> { _ = machine.acquire(waiter, now: t0, deadline: t0.advanced(by: .seconds(2))) }
        _ = machine.tick(now: t0)
        for connection in 0..<3 { _ = machine.connectionOpened(connection, now: t0, expiresAt: nil) }
        for connection in 0..<3 { _ = machine.release(connection, reusable: true, now: t0) }
        #expect(machine.idleCount == 3)
        #expect(machine.tick(now: t0.advanced(by: .seconds(59))).closed.isEmpty)
        let closed = machine.tick(now: t0.advanced(by: .seconds(60))).closed
        #expect(closed.count == 2 && machine.total == 1, "back to the minimum: \(closed)")
    }

    @Test func anOldConnectionIsClosedWhenReturnedAndReplacedForWhoWaits() {
        var machine = Machine(configuration: Self.configuration(maximum: 1))
        _ = machine.acquire(1, now: t0, deadline: t0.advanced(by: .seconds(5)))
        _ = machine.connectionOpened(0, now: t0, expiresAt: t0.advanced(by: .seconds(10)))
        _ = machine.acquire(2, now: t0.advanced(by: .seconds(9)), deadline: t0.advanced(by: .seconds(20)))
        let returned = machine.release(0, reusable: true, now: t0.advanced(by: .seconds(11)))
        #expect(returned.closed == [0] && returned.opened == [1], "closed for its age, a new one opened for the waiter")
        #expect(machine.connectionOpened(1, now: t0.advanced(by: .seconds(11)), expiresAt: nil).leases.map(\.waiter) == [2])
    }

    @Test func aConnectionThatIdledLongIsCheckedAndOneThatFailsIsReplacedForTheSameWaiterFirst() {
        var machine = Machine(configuration: Self.configuration(maximum: 2))
        _ = machine.acquire(1, now: t0, deadline: t0.advanced(by: .seconds(2)))
        _ = machine.connectionOpened(0, now: t0, expiresAt: nil)
        _ = machine.release(0, reusable: true, now: t0)
        let fresh = machine.leaseImmediately(now: t0.advanced(by: .seconds(10)))
        #expect(fresh?.connection == 0 && fresh?.check == false)
        _ = machine.release(0, reusable: true, now: t0.advanced(by: .seconds(10)))
        let later = t0.advanced(by: .seconds(41))
        let stale = machine.acquire(2, now: later, deadline: later.advanced(by: .seconds(2)))
        #expect(stale.leases.first?.check == true, "idle 31 s: checked before use")
        _ = machine.acquire(3, now: later, deadline: later.advanced(by: .seconds(2)))
        // Its check failed: it is closed, another opens, and waiter 2 goes before waiter 3.
        let broken = machine.connectionBroken(0, now: later)
        #expect(broken.closed == [0])
        let retried = machine.retry(2, deadline: later.advanced(by: .seconds(2)), now: later)
        let opened = (broken + retried).opened
        #expect(!opened.isEmpty)
        #expect(machine.connectionOpened(opened[0], now: later, expiresAt: nil).leases.map(\.waiter) == [2])
    }

    @Test func failingOpensBackOffOneAtATimeAndWaitersHearWhy() {
        var configuration = Self.configuration(maximum: 5)
        configuration.initialBackoff = .milliseconds(100)
        configuration.maximumBackoff = .seconds(1)
        var machine = Machine(configuration: configuration)
        for waiter in 0..<3 as Range<UInt64> { _ = machine.acquire(waiter, now: t0, deadline: t0.advanced(by: .seconds(2))) }
        #expect(machine.openingCount == 3)
        for connection in 0..<3 { _ = machine.connectionFailedToOpen(connection, reason: "connection refused", now: t0) }
        #expect(machine.tick(now: t0.advanced(by: .milliseconds(50))).opened.isEmpty, "within the backoff")
        // Three failures: 400 ms of backoff; then one open at a time.
        #expect(machine.tick(now: t0.advanced(by: .milliseconds(399))).opened.isEmpty)
        #expect(machine.tick(now: t0.advanced(by: .milliseconds(400))).opened.count == 1, "one at a time while opens fail")
        let failures = machine.tick(now: t0.advanced(by: .seconds(2))).failures
        #expect(failures.count == 3 && failures.allSatisfy { $0.error.kind == .connectFailed })
        #expect(failures.first?.error.message.contains("connection refused") == true)
    }

    @Test func aShutdownFailsWaitersClosesIdleOnesAndEndsWhenTheLastBorrowedOneReturns() {
        var machine = Machine(configuration: Self.configuration(maximum: 2))
        for waiter in 0..<2 as Range<UInt64> { _ = machine.acquire(waiter, now: t0, deadline: t0.advanced(by: .seconds(2))) }
        _ = machine.connectionOpened(0, now: t0, expiresAt: nil)
        _ = machine.connectionOpened(1, now: t0, expiresAt: nil)
        _ = machine.release(1, reusable: true, now: t0)
        _ = machine.acquire(5, now: t0, deadline: t0.advanced(by: .seconds(2)))  // takes 1
        _ = machine.acquire(6, now: t0, deadline: t0.advanced(by: .seconds(2)))  // waits
        let shutdown = machine.shutdown()
        #expect(shutdown.failures.map(\.waiter) == [6] && shutdown.failures.first?.error.kind == .shutDown)
        #expect(!shutdown.contains(.shutdownComplete))
        #expect(machine.acquire(9, now: t0, deadline: t0.advanced(by: .seconds(2))).failures.first?.error.kind == .shutDown)
        #expect(machine.release(0, reusable: true, now: t0) == [.close(0)])
        #expect(machine.release(1, reusable: true, now: t0) == [.close(1), .shutdownComplete])
    }

    /// Random events against the invariants: the counts add up, the maximum holds, and every
    /// waiter ends exactly once (served, failed or cancelled).
    @Test func randomEventsKeepTheInvariants() {
        var generator = SplitMix64(seed: 99)
        for run in 0..<200 {
            var configuration = Self.configuration(minimum: Int(generator.next() % 3), maximum: 1 + Int(generator.next() % 6))
            configuration.maximumLifetime = .seconds(5)
            var machine = Machine(configuration: configuration)
            var now = t0
            var nextWaiter: UInt64 = 0
            var waiting = Set<UInt64>()
            var ended = Set<UInt64>()
            var leased = Set<Int>()
            var opening = Set<Int>()
            func apply(_ actions: [Machine.Action]) {
                for action in actions {
                    switch action {
                    case .lease(let connection, let waiter, _):
                        #expect(waiting.remove(waiter) != nil && ended.insert(waiter).inserted, "run \(run): waiter \(waiter) served twice")
                        #expect(leased.insert(connection).inserted, "run \(run): connection \(connection) leased twice")
                    case .fail(let waiter, _):
                        #expect(waiting.remove(waiter) != nil && ended.insert(waiter).inserted, "run \(run): waiter \(waiter) ended twice")
                    case .open(let connection): opening.insert(connection)
                    case .close(let connection): leased.remove(connection)
                    case .shutdownComplete: break
                    }
                }
            }
            for _ in 0..<300 {
                now = now.advanced(by: .milliseconds(Int64(generator.next() % 400)))
                switch generator.next() % 8 {
                case 0, 1:
                    waiting.insert(nextWaiter)
                    apply(machine.acquire(nextWaiter, now: now, deadline: now.advanced(by: .seconds(2))))
                    nextWaiter += 1
                case 2:
                    if let connection = opening.sorted().randomElement(using: &generator) {
                        opening.remove(connection)
                        apply(machine.connectionOpened(connection, now: now, expiresAt: now.advanced(by: .seconds(5))))
                    }
                case 3:
                    if let connection = opening.sorted().randomElement(using: &generator) {
                        opening.remove(connection)
                        apply(machine.connectionFailedToOpen(connection, reason: "refused", now: now))
                    }
                case 4, 5:
                    if let connection = leased.sorted().randomElement(using: &generator) {
                        leased.remove(connection)
                        apply(machine.release(connection, reusable: generator.next() % 5 != 0, now: now))
                    }
                case 6:
                    if let waiter = waiting.sorted().randomElement(using: &generator) { apply(machine.cancel(waiter)) }
                default:
                    apply(machine.tick(now: now))
                }
                #expect(machine.total <= configuration.maximumConnections, "run \(run): over the maximum")
                #expect(machine.idleCount + machine.leasedCount + machine.openingCount == machine.total, "run \(run): counts")
                #expect(machine.leasedCount == leased.count, "run \(run): leased \(machine.leasedCount) vs \(leased.count)")
                #expect(machine.waitingCount == waiting.count, "run \(run): waiting")
            }
        }
    }
}
