import DequeModule

/// How a pool sizes, ages and waits.
public struct PoolConfiguration: Sendable {
    /// Connections kept open even when nobody needs them (opened ahead, at start).
    public var minimumConnections = 1
    /// Connections at most, in use and idle.
    public var maximumConnections = 10
    /// Connections being opened at once at most: a burst of callers opens several in parallel,
    /// not one after another, without a storm against the server.
    public var maximumConcurrentOpens = 4
    /// How long a caller waits for a connection before ``PoolError/Kind/timedOut``.
    public var acquireTimeout: Duration = .seconds(10)
    /// An idle connection above the minimum is closed after this long unused.
    public var idleTimeout: Duration? = .seconds(300)
    /// A connection is closed once this old (when next idle), so that none lives forever (a
    /// failover, a changed password, server memory); nil: no limit.
    public var maximumLifetime: Duration? = .seconds(3600)
    /// The lifetime is shortened by up to this fraction, at random, per connection, so that
    /// connections opened together do not all close together.
    public var lifetimeJitter = 0.1
    /// A connection idle for longer than this is checked (an empty query, a PING) before reuse.
    public var healthCheckAfterIdle: Duration = .seconds(30)
    /// After a failed open, the next waits this long, doubling up to `maximumBackoff`.
    public var initialBackoff: Duration = .milliseconds(100)
    public var maximumBackoff: Duration = .seconds(5)

    public init(minimumConnections: Int = 1, maximumConnections: Int = 10) {
        self.minimumConnections = minimumConnections
        self.maximumConnections = maximumConnections
    }
}

/// Why a caller got no connection.
public struct PoolError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// No connection came within the acquire timeout.
        case timedOut
        /// The pool is shutting down (or has shut down).
        case shutDown
        /// The waiting task was cancelled.
        case cancelled
        /// Opening connections fails (the message has the last failure).
        case connectFailed
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// The pool's logic, without I/O or a clock: events go in (a caller wants a connection, one was
/// opened, returned, failed; the time passed), actions come out (lease this connection to that
/// caller, open one, close one, fail a caller). The shell around it performs the actions.
///
/// Connections and waiting callers are named by ids the shell chooses. Idle connections are
/// reused most recently used first, so that the rest can age out; waiters are served first in,
/// first out.
public struct PoolStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Swift.Duration {
    public typealias ConnectionID = Int
    public typealias WaiterID = UInt64

    /// What the shell does next.
    public enum Action: Sendable, Equatable {
        /// Hands `connection` to `waiter`; with `check`, the shell first checks it (it idled long)
        /// and reports a failed check with ``connectionBroken(_:now:)`` and ``retry(_:deadline:now:)``.
        case lease(ConnectionID, to: WaiterID, check: Bool)
        /// Opens a connection under this id; reports ``connectionOpened(_:now:expiresAt:)`` or
        /// ``connectionFailedToOpen(_:reason:now:)``.
        case open(ConnectionID)
        /// Closes the connection (idle too long, too old, broken, or shutting down).
        case close(ConnectionID)
        /// Tells the waiter it gets nothing.
        case fail(WaiterID, PoolError)
        /// Every connection is closed after a shutdown.
        case shutdownComplete
    }

    enum Slot: Sendable {
        case opening
        case idle(since: Instant, expiresAt: Instant?)
        case leased(expiresAt: Instant?)
    }

    struct Waiter: Sendable {
        var id: WaiterID
        var since: Instant
        var deadline: Instant
    }

    public let configuration: PoolConfiguration
    var slots: [ConnectionID: Slot] = [:]
    /// Idle connections, most recently returned last.
    var idle: [ConnectionID] = []
    var waiters = Deque<Waiter>()
    var nextConnectionID: ConnectionID = 0
    var opening = 0
    var leased = 0
    var shuttingDown = false
    var shutdownReported = false
    /// Failed opens in a row, and when the next may start.
    var failedOpens = 0
    var nextOpenAllowed: Instant?
    var lastOpenFailure: String?

    public init(configuration: PoolConfiguration) {
        self.configuration = configuration
    }

    // MARK: - Counts

    /// Connections open or opening.
    public var total: Int { slots.count }
    public var idleCount: Int { idle.count }
    public var leasedCount: Int { leased }
    public var openingCount: Int { opening }
    public var waitingCount: Int { waiters.count }
    public var isShuttingDown: Bool { shuttingDown }

    // MARK: - Events

    /// A caller wants a connection until `deadline`.
    public mutating func acquire(_ waiter: WaiterID, now: Instant, deadline: Instant) -> [Action] {
        if shuttingDown { return [.fail(waiter, PoolError(.shutDown, "the pool is shutting down"))] }
        if waiters.isEmpty, let lease = leaseIdle(to: waiter, now: now) { return takePendingCloses() + [lease] }
        waiters.append(Waiter(id: waiter, since: now, deadline: deadline))
        return openForDemand(now: now)
    }

    /// The most recently returned idle connection, when one is ready and nobody waits ahead:
    /// the fast path of ``acquire(_:now:deadline:)`` (no waiter id is queued, nothing else to
    /// do). Nil changes nothing; the caller then acquires the normal way.
    public mutating func leaseImmediately(now: Instant) -> (connection: ConnectionID, check: Bool)? {
        guard !shuttingDown, waiters.isEmpty, let connection = idle.last, case .idle(let since, let expiresAt)? = slots[connection],
            expiresAt.map({ now < $0 }) ?? true
        else { return nil }
        idle.removeLast()
        slots[connection] = .leased(expiresAt: expiresAt)
        leased += 1
        return (connection, since.duration(to: now) > configuration.healthCheckAfterIdle)
    }

    /// A waiter whose leased connection failed its check goes back to the front of the queue.
    public mutating func retry(_ waiter: WaiterID, deadline: Instant, now: Instant) -> [Action] {
        if shuttingDown { return [.fail(waiter, PoolError(.shutDown, "the pool is shutting down"))] }
        if let lease = leaseIdle(to: waiter, now: now) { return takePendingCloses() + [lease] }
        waiters.prepend(Waiter(id: waiter, since: now, deadline: deadline))
        return openForDemand(now: now)
    }

    /// The waiting task was cancelled: it leaves the queue at once.
    public mutating func cancel(_ waiter: WaiterID) -> [Action] {
        guard let index = waiters.firstIndex(where: { $0.id == waiter }) else { return [] }
        waiters.remove(at: index)
        return [.fail(waiter, PoolError(.cancelled, "the task waiting for a connection was cancelled"))]
    }

    /// A connection the machine asked for is open.
    public mutating func connectionOpened(_ connection: ConnectionID, now: Instant, expiresAt: Instant?) -> [Action] {
        guard case .opening? = slots[connection] else { return [] }
        opening -= 1
        failedOpens = 0
        nextOpenAllowed = nil
        lastOpenFailure = nil
        if shuttingDown {
            slots[connection] = nil
            return [.close(connection)] + shutdownProgress()
        }
        slots[connection] = .idle(since: now, expiresAt: expiresAt)
        idle.append(connection)
        var actions = serveWaiters(now: now)
        actions += openForDemand(now: now)
        return actions
    }

    /// Opening a connection failed; later opens back off.
    public mutating func connectionFailedToOpen(_ connection: ConnectionID, reason: String, now: Instant) -> [Action] {
        guard case .opening? = slots[connection] else { return [] }
        slots[connection] = nil
        opening -= 1
        failedOpens += 1
        lastOpenFailure = reason
        let doublings = min(failedOpens - 1, 16)
        let backoff = min(configuration.maximumBackoff, configuration.initialBackoff * (1 << doublings))
        nextOpenAllowed = now.advanced(by: backoff)
        if shuttingDown { return shutdownProgress() }
        return []
    }

    /// A caller gives its connection back; `reusable` false (broken, or not proven clean) closes it.
    public mutating func release(_ connection: ConnectionID, reusable: Bool, now: Instant) -> [Action] {
        guard case .leased(let expiresAt)? = slots[connection] else { return [] }
        leased -= 1
        let expired = expiresAt.map { now >= $0 } ?? false
        if !reusable || expired || shuttingDown {
            slots[connection] = nil
            var actions: [Action] = [.close(connection)]
            if shuttingDown { return actions + shutdownProgress() }
            actions += openForDemand(now: now)
            return actions
        }
        slots[connection] = .idle(since: now, expiresAt: expiresAt)
        idle.append(connection)
        return serveWaiters(now: now)
    }

    /// A leased connection turned out broken (its check failed) before its user had it; it is
    /// gone, and the pool opens another if needed.
    public mutating func connectionBroken(_ connection: ConnectionID, now: Instant) -> [Action] {
        guard case .leased? = slots[connection] else { return [] }
        leased -= 1
        slots[connection] = nil
        var actions: [Action] = [.close(connection)]
        if shuttingDown { return actions + shutdownProgress() }
        actions += openForDemand(now: now)
        return actions
    }

    /// Time passed: waiters past their deadline fail, idle connections too old or idle too long
    /// close, and the pool opens up to its minimum (after any backoff).
    public mutating func tick(now: Instant) -> [Action] {
        var actions: [Action] = []
        if waiters.contains(where: { now >= $0.deadline }) {
            let overdue = waiters.filter { now >= $0.deadline }
            waiters.removeAll { now >= $0.deadline }
            for waiter in overdue { actions.append(.fail(waiter.id, timeoutError(for: waiter, now: now))) }
        }
        guard !shuttingDown else { return actions }
        var kept: [ConnectionID] = []
        var closable = max(0, total - configuration.minimumConnections)
        for connection in idle {
            guard case .idle(let since, let expiresAt)? = slots[connection] else { continue }
            let tooOld = expiresAt.map { now >= $0 } ?? false
            let unused = configuration.idleTimeout.map { since.duration(to: now) >= $0 } ?? false
            if tooOld || (unused && closable > 0) {
                slots[connection] = nil
                if !tooOld { closable -= 1 }
                actions.append(.close(connection))
            } else {
                kept.append(connection)
            }
        }
        idle = kept
        actions += openForDemand(now: now)
        return actions
    }

    /// Stops handing out connections: waiters fail, idle connections close; leased ones close
    /// as they come back. ``Action/shutdownComplete`` comes once none is left.
    public mutating func shutdown() -> [Action] {
        guard !shuttingDown else { return [] }
        shuttingDown = true
        var actions: [Action] = waiters.map { .fail($0.id, PoolError(.shutDown, "the pool is shutting down")) }
        waiters.removeAll()
        for connection in idle { slots[connection] = nil; actions.append(.close(connection)) }
        idle.removeAll()
        return actions + shutdownProgress()
    }

    /// The connections still leased (to close by force when a shutdown's grace period ends).
    public var leasedConnections: [ConnectionID] {
        slots.compactMap { id, slot in if case .leased = slot { return id } else { return nil } }.sorted()
    }

    // MARK: - Helpers

    /// The most recently returned idle connection, leased to `waiter`.
    private mutating func leaseIdle(to waiter: WaiterID, now: Instant) -> Action? {
        while let connection = idle.popLast() {
            guard case .idle(let since, let expiresAt)? = slots[connection] else { continue }
            if let expiresAt, now >= expiresAt {
                // Too old to hand out: the caller of the lease closes nothing; tick will, but
                // closing now keeps the count right.
                slots[connection] = nil
                pendingCloses.append(connection)
                continue
            }
            slots[connection] = .leased(expiresAt: expiresAt)
            leased += 1
            return .lease(connection, to: waiter, check: since.duration(to: now) > configuration.healthCheckAfterIdle)
        }
        return nil
    }

    /// Connections found too old while leasing, closed with the next actions returned.
    var pendingCloses: [ConnectionID] = []

    /// Leases idle connections to the waiters at the front of the queue.
    private mutating func serveWaiters(now: Instant) -> [Action] {
        var actions: [Action] = []
        while let waiter = waiters.first, let lease = leaseIdle(to: waiter.id, now: now) {
            waiters.removeFirst()
            actions.append(lease)
        }
        return takePendingCloses() + actions
    }

    private mutating func takePendingCloses() -> [Action] {
        guard !pendingCloses.isEmpty else { return [] }
        defer { pendingCloses.removeAll() }
        return pendingCloses.map { .close($0) }
    }

    /// Opens what the waiters and the minimum need, within the maximum, the parallel-open limit
    /// and any backoff.
    private mutating func openForDemand(now: Instant) -> [Action] {
        var actions = takePendingCloses()
        guard !shuttingDown else { return actions }
        if let nextOpenAllowed, now < nextOpenAllowed { return actions }
        // One opening connection at a time while opens are failing: no storm against a server
        // that is down.
        let parallel = failedOpens > 0 ? 1 : configuration.maximumConcurrentOpens
        let wanted = max(waiters.count - opening, configuration.minimumConnections - total)
        var count = min(wanted, configuration.maximumConnections - total, parallel - opening)
        while count > 0 {
            let connection = nextConnectionID
            nextConnectionID += 1
            slots[connection] = .opening
            opening += 1
            actions.append(.open(connection))
            count -= 1
        }
        return actions
    }

    private mutating func shutdownProgress() -> [Action] {
        guard shuttingDown, slots.isEmpty, !shutdownReported else { return [] }
        shutdownReported = true
        return [.shutdownComplete]
    }

    /// A duration in whole milliseconds, as the messages show it.
    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
    }

    private func timeoutError(for waiter: Waiter, now: Instant) -> PoolError {
        var message = "no connection within \(Self.milliseconds(waiter.since.duration(to: now))): \(leased) of "
            + "\(configuration.maximumConnections) in use, \(opening) opening, \(waiters.count) more callers waiting"
        if let oldest = waiters.first { message += " (the longest for \(Self.milliseconds(oldest.since.duration(to: now))))" }
        if let lastOpenFailure { message += "; opening a connection failed: \(lastOpenFailure)" }
        return PoolError(lastOpenFailure == nil ? .timedOut : .connectFailed, message)
    }
}
