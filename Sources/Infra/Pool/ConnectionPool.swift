import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// A connection a ``ConnectionPool`` can hold: it can say whether it is alive and make itself
/// fit for its next user.
public protocol PooledConnection: AnyObject, Sendable {
    /// Whether the connection is known to be closed or broken.
    var isClosed: Bool { get }
    /// Whether an idle connection is closed, or its server closed it or sent something unasked:
    /// a cheap check (no round trip) made before every hand-out.
    var isBrokenWhileIdle: Bool { get }
    /// Undoes what its last user left (an open transaction, subscriptions, a selected database
    /// …). False when it cannot be proven clean: the pool closes it.
    func prepareForReuse() async -> Bool
    /// A cheap round trip proving it alive, before reuse after a long idle.
    func isAlive() async -> Bool
    /// Closes it (at once; callers waiting on it fail).
    func close()
}

/// An async connection pool, generic over the kind of connection: callers borrow a connection
/// with ``withConnection(_:)``; the pool opens connections ahead up to its minimum and in
/// parallel when demand rises, waits fairly (first in, first out) with a deadline, checks
/// connections that idled long, resets each one before its next user, and retires connections
/// that are too old, idle too long or broken. The logic is ``PoolStateMachine``; this class
/// performs its actions.
///
/// As a swift-service-lifecycle `Service`, ``run()`` returns after a graceful shutdown: the pool
/// stops handing out connections, closes the idle ones and waits for the borrowed ones up to the
/// shutdown grace period, then closes them too.
public final class ConnectionPool<Connection: PooledConnection>: Service, Sendable {
    /// Opens a new connection.
    public typealias Factory = @Sendable (_ logger: Logger) async throws -> Connection

    public let configuration: PoolConfiguration
    /// The pool's name in logs and metrics (`postgres`, `redis` …).
    public let name: String
    /// How long a graceful shutdown waits for borrowed connections before closing them.
    public var shutdownGracePeriod: Duration { shutdownGrace }

    private let factory: Factory
    private let logger: Logger
    private let shutdownGrace: Duration
    private let state: Mutex<State>
    private let metrics: PoolMetrics
    private let ticker = Mutex<Task<Void, Never>?>(nil)

    private struct State: ~Copyable {
        var machine: PoolStateMachine<ContinuousClock.Instant>
        var connections: [Int: Connection] = [:]
        var waiters: [UInt64: CheckedContinuation<Lease, any Error>] = [:]
        /// Waiters whose task was cancelled before they were registered.
        var cancelledEarly: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
        var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
        var isShutDown = false
    }

    /// A borrowed connection.
    struct Lease: Sendable {
        var id: Int
        var connection: Connection
        var mustCheck: Bool
    }

    /// A pool that opens connections with `factory`. The minimum is opened at once, in the
    /// background.
    public init(
        name: String, configuration: PoolConfiguration, shutdownGracePeriod: Duration = .seconds(10), logger: Logger,
        factory: @escaping Factory
    ) {
        self.name = name
        self.configuration = configuration
        self.shutdownGrace = shutdownGracePeriod
        var logger = logger
        logger[metadataKey: "pool"] = "\(name)"
        self.logger = logger
        self.factory = factory
        self.metrics = PoolMetrics(pool: name)
        self.state = Mutex(State(machine: PoolStateMachine(configuration: configuration)))
        let opening = state.withLock { $0.machine.tick(now: .now) }
        perform(opening)
        startTicker()
    }

    deinit {
        ticker.withLock { $0?.cancel() }
    }

    /// Counts, for health tables and tests.
    public var statistics: PoolStatistics { state.withLock { Self.statistics(of: $0.machine) } }

    private static func statistics(of machine: borrowing PoolStateMachine<ContinuousClock.Instant>) -> PoolStatistics {
        PoolStatistics(
            open: machine.total - machine.openingCount, idle: machine.idleCount, inUse: machine.leasedCount, opening: machine.openingCount,
            waiting: machine.waitingCount)
    }

    // MARK: - Borrowing

    /// Runs `body` with a connection of the pool's, which goes back to the pool (reset) when
    /// `body` returns or throws. Throws ``PoolError`` when no connection comes within the
    /// acquire timeout (the message says how many are in use and how many callers wait), when
    /// the pool is shutting down, or when the waiting task is cancelled.
    public func withConnection<Result: Sendable>(_ body: (Connection) async throws -> Result) async throws -> Result {
        let lease = try await acquire()
        do {
            let result = try await body(lease.connection)
            await giveBack(lease)
            return result
        } catch {
            await giveBack(lease)
            throw error
        }
    }

    /// A connection for the caller, checked first when it idled long; a connection that fails
    /// its check is replaced without the caller seeing it.
    func acquire() async throws -> Lease {
        let start = ContinuousClock.now
        let deadline = start + configuration.acquireTimeout
        var retrying = false
        while true {
            let lease = try await waitForLease(deadline: deadline, retrying: retrying)
            var healthy = !lease.connection.isBrokenWhileIdle
            if healthy, lease.mustCheck { healthy = await lease.connection.isAlive() }
            if healthy {
                metrics.recordWait(start.duration(to: .now))
                return lease
            }
            retrying = true
            // Broken before the caller had it: replace it, and keep the caller's place.
            logger.debug("a connection failed its check before reuse; replacing it", metadata: ["connection": "\(lease.id)"])
            metrics.evicted.increment()
            let actions = state.withLock { $0.machine.connectionBroken(lease.id, now: .now) }
            perform(actions)
            guard ContinuousClock.now < deadline else {
                throw PoolError(.timedOut, "no healthy connection within \(PoolStateMachine<ContinuousClock.Instant>.milliseconds(start.duration(to: .now)))")
            }
        }
    }

    /// A lease for the caller; `retrying` (its last one failed its check) keeps its place at the
    /// front of the queue.
    private func waitForLease(deadline: ContinuousClock.Instant, retrying: Bool) async throws -> Lease {
        // The common case takes one lock and no suspension: an idle connection and nobody ahead.
        let (waiter, immediate, counts) = state.withLock { state -> (UInt64, Lease?, PoolStatistics?) in
            let waiter = state.nextWaiter
            state.nextWaiter += 1
            guard let (id, check) = state.machine.leaseImmediately(now: .now), let connection = state.connections[id] else {
                return (waiter, nil, nil)
            }
            return (waiter, Lease(id: id, connection: connection, mustCheck: check), Self.statistics(of: state.machine))
        }
        if let immediate {
            if let counts { metrics.update(counts) }
            return immediate
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                let actions = state.withLock { state -> [PoolStateMachine<ContinuousClock.Instant>.Action] in
                    if state.cancelledEarly.remove(waiter) != nil {
                        continuation.resume(throwing: PoolError(.cancelled, "the task waiting for a connection was cancelled"))
                        return []
                    }
                    state.waiters[waiter] = continuation
                    return retrying
                        ? state.machine.retry(waiter, deadline: deadline, now: .now) : state.machine.acquire(waiter, now: .now, deadline: deadline)
                }
                perform(actions)
            }
        } onCancel: {
            let actions = state.withLock { state -> [PoolStateMachine<ContinuousClock.Instant>.Action] in
                guard state.waiters[waiter] != nil else {
                    state.cancelledEarly.insert(waiter)
                    return []
                }
                return state.machine.cancel(waiter)
            }
            perform(actions)
        }
    }

    /// Resets the connection (off the caller's path when nothing needs undoing) and returns it.
    private func giveBack(_ lease: Lease) async {
        let reusable = await lease.connection.prepareForReuse()
        if !reusable { logger.debug("a returned connection could not be reset; closing it", metadata: ["connection": "\(lease.id)"]) }
        let actions = state.withLock { $0.machine.release(lease.id, reusable: reusable && !lease.connection.isClosed, now: .now) }
        perform(actions)
    }

    // MARK: - Lifecycle

    /// Waits for a graceful shutdown (swift-service-lifecycle), then shuts the pool down.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops handing out connections, closes the idle ones, waits for the borrowed ones up to
    /// the grace period, then closes what is left.
    public func shutdown() async {
        let actions = state.withLock { $0.machine.shutdown() }
        perform(actions)
        let done = await withTaskGroup(of: Bool.self) { group in
            group.addTask { [self] in
                await withCheckedContinuation { continuation in
                    let finished = state.withLock { state -> Bool in
                        if state.isShutDown { return true }
                        state.shutdownWaiters.append(continuation)
                        return false
                    }
                    if finished { continuation.resume() }
                }
                return true
            }
            group.addTask { [shutdownGrace] in
                try? await Task.sleep(for: shutdownGrace)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !done {
            let borrowed = state.withLock { state in state.machine.leasedConnections.compactMap { state.connections[$0] } }
            logger.warning("connections still borrowed after the shutdown grace period; closing them", metadata: ["count": "\(borrowed.count)"])
            for connection in borrowed { connection.close() }
        }
        ticker.withLock { $0?.cancel() }
    }

    // MARK: - Performing the machine's actions

    private func perform(_ actions: [PoolStateMachine<ContinuousClock.Instant>.Action]) {
        for action in actions {
            switch action {
            case .lease(let id, let waiter, let check):
                let (continuation, connection) = state.withLock { state in (state.waiters.removeValue(forKey: waiter), state.connections[id]) }
                guard let continuation, let connection else { continue }
                continuation.resume(returning: Lease(id: id, connection: connection, mustCheck: check))
            case .open(let id):
                open(id)
            case .close(let id):
                if let connection = state.withLock({ $0.connections.removeValue(forKey: id) }) {
                    metrics.closed.increment()
                    connection.close()
                }
            case .fail(let waiter, let error):
                let continuation = state.withLock { $0.waiters.removeValue(forKey: waiter) }
                if error.kind == .timedOut || error.kind == .connectFailed {
                    metrics.timeouts.increment()
                    logger.warning("a caller got no connection", metadata: ["reason": "\(error.message)"])
                }
                continuation?.resume(throwing: error)
            case .shutdownComplete:
                let waiters = state.withLock { state in
                    state.isShutDown = true
                    defer { state.shutdownWaiters.removeAll() }
                    return state.shutdownWaiters
                }
                for waiter in waiters { waiter.resume() }
            }
        }
        updateGauges()
    }

    private func open(_ id: Int) {
        let factory = self.factory
        var logger = self.logger
        logger[metadataKey: "connection"] = "\(id)"
        Task { [weak self, logger] in
            let result: Result<Connection, any Error>
            do {
                result = .success(try await factory(logger))
            } catch {
                result = .failure(error)
            }
            guard let self else {
                if case .success(let connection) = result { connection.close() }
                return
            }
            let now = ContinuousClock.now
            let actions: [PoolStateMachine<ContinuousClock.Instant>.Action]
            switch result {
            case .success(let connection):
                metrics.created.increment()
                let expiresAt = configuration.maximumLifetime.map { lifetime in
                    now + lifetime * (1 - Double.random(in: 0...max(0, min(1, configuration.lifetimeJitter))))
                }
                actions = state.withLock { state in
                    state.connections[id] = connection
                    return state.machine.connectionOpened(id, now: now, expiresAt: expiresAt)
                }
            case .failure(let error):
                metrics.failed.increment()
                logger.warning("opening a connection failed", metadata: ["error": "\(error)"])
                actions = state.withLock { $0.machine.connectionFailedToOpen(id, reason: "\(error)", now: now) }
            }
            perform(actions)
        }
    }

    /// Passes time to the machine: waiters past their deadline, idle and lifetime limits, the
    /// minimum and retries after a backoff.
    private func startTicker() {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                guard let self else { return }
                let actions = self.state.withLock { $0.machine.tick(now: .now) }
                if !actions.isEmpty { self.perform(actions) }
            }
        }
        ticker.withLock { $0 = task }
    }

    private func updateGauges() {
        let counts = statistics
        metrics.update(counts)
    }
}

/// A pool's counts.
public struct PoolStatistics: Sendable, Equatable {
    /// Connections open (idle or in use).
    public var open: Int
    public var idle: Int
    public var inUse: Int
    /// Connections being opened.
    public var opening: Int
    /// Callers waiting for a connection.
    public var waiting: Int
}

/// The pool's metrics, named `infra_pool_*` with the pool's name as a dimension.
struct PoolMetrics: Sendable {
    let inUse: Gauge
    let idle: Gauge
    let waiting: Gauge
    let waitTime: Metrics.Timer
    let timeouts: Counter
    let created: Counter
    let failed: Counter
    let closed: Counter
    let evicted: Counter

    init(pool: String) {
        let dimensions = [("pool", pool)]
        inUse = Gauge(label: "infra_pool_connections_in_use", dimensions: dimensions)
        idle = Gauge(label: "infra_pool_connections_idle", dimensions: dimensions)
        waiting = Gauge(label: "infra_pool_waiting_callers", dimensions: dimensions)
        waitTime = Metrics.Timer(label: "infra_pool_wait_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        timeouts = Counter(label: "infra_pool_acquire_failures_total", dimensions: dimensions)
        created = Counter(label: "infra_pool_connections_created_total", dimensions: dimensions)
        failed = Counter(label: "infra_pool_connections_failed_total", dimensions: dimensions)
        closed = Counter(label: "infra_pool_connections_closed_total", dimensions: dimensions)
        evicted = Counter(label: "infra_pool_connections_evicted_total", dimensions: dimensions)
    }

    func recordWait(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        waitTime.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    func update(_ counts: PoolStatistics) {
        inUse.record(counts.inUse)
        idle.record(counts.idle)
        waiting.record(counts.waiting)
    }
}
