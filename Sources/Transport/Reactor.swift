import CTransport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One epoll thread that wakes the tasks waiting for their sockets.
///
/// Sockets are registered once, edge-triggered, for both directions. An operation tries its system
/// call first and only on EAGAIN suspends; each registration counts the readiness edges it has
/// seen per direction, and a waiter is stored only if no edge arrived since its failed attempt,
/// which closes the race between EAGAIN and suspension without an extra system call. Deadlines
/// live in a heap on the reactor and bound `epoll_wait`'s timeout.
public final class Reactor: Sendable {
    /// The process-wide reactor, started on first use.
    public static let shared = Reactor(name: "transport-io")

    private let epollDescriptor: Int32
    private let wakeDescriptor: Int32
    /// Signalled when a task is resumed while a thread waits inline, to ask for that thread back.
    let inlineWakeDescriptor: Int32
    private let startupError = Mutex<TransportError?>(nil)
    fileprivate let state = Mutex(ReactorState())
    private let nextToken = Atomic<UInt64>(1)
    private let waiterCount = Atomic<Int>(0)
    /// Threads that may block in an inline read wait at once: one fewer than the processors, so
    /// that at least one thread of the cooperative pool (as wide as the processors) always runs.
    private let inlineWaitSlots: Atomic<Int>
    private let inlineWaitSlotCount: Int
    private let inlineWaits = Atomic<Int>(0)
    private let inlineHits = Atomic<Int>(0)
    private let inlineRefusals = Atomic<Int>(0)
    private let socketEvents = Atomic<Int>(0)
    /// When this reactor last resumed a task (monotonic nanoseconds; 0: never), and whose: the id
    /// of the one registration it resumed then, or `UInt64.max` for several or a timer. Written
    /// by the reactor's thread, read by claims; a torn pair only misjudges one claim.
    private let lastResumeAt = Atomic<UInt64>(0)
    private let lastResumedID = Atomic<UInt64>(0)
    /// The reactor thread's `pthread_self()` (0 until it starts).
    private let threadID = Atomic<UInt>(0)
    /// Jobs run as a task executor (``executorJobCount``).
    private let jobsRun = Atomic<Int>(0)
    /// How long after resuming another task the reactor counts as busy (see ``claimInlineWait(for:now:)``).
    static let busyWindow: UInt64 = 1_000_000

    /// Starts a reactor with its own thread. Most code uses ``shared``; a separate reactor is
    /// useful where its counters must not be disturbed by other work.
    public init(name: String = "transport-io") {
        let epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        let efd = epfd >= 0 ? eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) : -1
        let inlineFD = efd >= 0 ? eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) : -1
        epollDescriptor = epfd
        wakeDescriptor = efd
        inlineWakeDescriptor = inlineFD
        inlineWaitSlotCount = Swift.max(0, sysconf(Int32(_SC_NPROCESSORS_ONLN)) - 1)
        inlineWaitSlots = Atomic(inlineWaitSlotCount)
        if epfd < 0 || efd < 0 || inlineFD < 0 {
            let code = errno
            startupError.withLock {
                $0 = TransportError(.system, errno: code, message: "could not start the I/O reactor")
            }
            if epfd >= 0 { Glibc.close(epfd) }
            if efd >= 0 { Glibc.close(efd) }
            return
        }
        _ = ctransport_epoll_ctl(epfd, EPOLL_CTL_ADD, efd, EPOLLIN.rawValue, 0)
        let started = ReactorThread.start(name: name) { [self] in self.run() }
        if !started {
            startupError.withLock {
                $0 = TransportError(.system, message: "could not start the I/O reactor thread")
            }
        }
    }

    /// The longest sleep of an idle reactor, in nanoseconds.
    static let idleTick: UInt64 = 1_000_000_000

    /// Number of sockets currently registered.
    public var registrationCount: Int { state.withLock { $0.registrations.count } }
    /// Number of suspended reads, writes and connects waiting for readiness.
    public var pendingWaiterCount: Int { waiterCount.load(ordering: .relaxed) }
    /// Number of armed deadlines.
    public var pendingTimerCount: Int { state.withLock { $0.timers.count } }

    /// Stops the thread once all registrations are gone. The shared reactor is never stopped.
    public func shutdown() {
        state.withLock { $0.isShuttingDown = true }
        wake()
    }

    // MARK: - Registration

    func register(descriptor: Int32, endpoint: Endpoint) throws -> IORegistration {
        if let failure = startupError.withLock({ $0 }) { throw failure }
        let id = nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
        let registration = IORegistration(id: id, descriptor: descriptor, endpoint: endpoint, reactor: self)
        state.withLock { $0.registrations[id] = registration }
        if ctransport_epoll_ctl(epollDescriptor, EPOLL_CTL_ADD, descriptor, Self.armedEvents, id) != 0 {
            let code = errno
            _ = state.withLock { $0.registrations.removeValue(forKey: id) }
            throw TransportError(.system, endpoint: endpoint, errno: code, message: "epoll registration failed")
        }
        return registration
    }

    /// A socket's events: input, output and the peer's hang-up, edge-triggered.
    static let armedEvents = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
    /// The same without input, while a reader waits for it inline (see ``IORegistration/disarmRead()``).
    static let readDisarmedEvents = EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue

    /// Changes the events the reactor watches on `registration`'s socket (its descriptor must be
    /// held open by a call in flight). False when the kernel refused.
    func modify(_ registration: IORegistration, events: UInt32) -> Bool {
        ctransport_epoll_ctl(epollDescriptor, EPOLL_CTL_MOD, registration.descriptor, events, registration.id) == 0
    }

    func deregister(_ registration: IORegistration) {
        _ = ctransport_epoll_ctl(epollDescriptor, EPOLL_CTL_DEL, registration.descriptor, 0, 0)
        let last = state.withLock { state -> Bool in
            state.registrations.removeValue(forKey: registration.id)
            return state.isShuttingDown && state.registrations.isEmpty
        }
        if last { wake() }
    }

    func makeToken() -> UInt64 {
        nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    func waiterStored() { waiterCount.wrappingAdd(1, ordering: .relaxed) }
    func waiterTaken() { waiterCount.wrappingSubtract(1, ordering: .relaxed) }

    /// Number of reads that waited for data on their own thread instead of suspending (see
    /// ``ConnectOptions/inlineReadWait``).
    public var inlineWaitCount: Int { inlineWaits.load(ordering: .relaxed) }
    /// How many of those ended with data on their socket (the others ran out or gave way).
    public var inlineWaitHitCount: Int { inlineHits.load(ordering: .relaxed) }
    /// Socket readiness events epoll delivered to this reactor's thread: each one a wake-up of it.
    public var socketEventCount: Int { socketEvents.load(ordering: .relaxed) }

    /// Reads that asked for an inline wait and were refused because the reactor was busy.
    public var inlineWaitRefusalCount: Int { inlineRefusals.load(ordering: .relaxed) }

    /// Claims the right to block the calling thread briefly on socket `registrationID`: granted
    /// while a slot is free and the reactor is not busy. Whenever the reactor resumes a task while
    /// a `ppoll` wait is on, it signals ``inlineWakeDescriptor`` and the wait gives its thread
    /// back, so a thread is never held while other work of this reactor is ready (a blocking
    /// `recv` wait, a few milliseconds at most, runs its course); sockets that merely sit parked
    /// (a subscriber, a LISTEN) do not stop it. Busy means it resumed a task of
    /// another socket within the last millisecond (``busyWindow``; a handler it ran, such as a
    /// NATS connection's reader, does not count): then many connections are in
    /// use at once (a pool under load), each wait would soon be cut short, and the thread is
    /// better given to the tasks. Its own socket's resumption does not count, so a sequential
    /// caller that once suspended waits inline again at its next read. Pair with
    /// ``releaseInlineWait(hit:)``.
    func claimInlineWait(for registrationID: UInt64, now: UInt64) -> Bool {
        // A task run by this reactor as its executor must never block the thread that polls.
        if isReactorThread {
            inlineRefusals.wrappingAdd(1, ordering: .relaxed)
            return false
        }
        let busy = Self.isBusy(
            now: now, lastResumeAt: lastResumeAt.load(ordering: .relaxed), lastResumedID: lastResumedID.load(ordering: .relaxed),
            claimant: registrationID)
        if busy {
            inlineRefusals.wrappingAdd(1, ordering: .relaxed)
            return false
        }
        var slots = inlineWaitSlots.load(ordering: .relaxed)
        while slots > 0 {
            let (exchanged, original) = inlineWaitSlots.weakCompareExchange(
                expected: slots, desired: slots - 1, successOrdering: .acquiring, failureOrdering: .relaxed)
            if exchanged {
                inlineWaits.wrappingAdd(1, ordering: .relaxed)
                return true
            }
            slots = original
        }
        return false
    }

    /// Whether a reactor that last resumed `lastResumedID`'s task at `lastResumeAt` is busy for a
    /// claim by `claimant` at `now`.
    static func isBusy(now: UInt64, lastResumeAt: UInt64, lastResumedID: UInt64, claimant: UInt64) -> Bool {
        lastResumeAt != 0 && now &- lastResumeAt < busyWindow && lastResumedID != claimant
    }

    /// Asks every thread in an inline wait to give up its wait now (a task became ready, or a
    /// socket was closed). Costs one eventfd write, and nothing while no wait is on.
    func interruptInlineWaits() {
        guard inlineWaitSlots.load(ordering: .relaxed) < inlineWaitSlotCount else { return }
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(inlineWakeDescriptor, $0.baseAddress, 8) }
    }

    func releaseInlineWait(hit: Bool) {
        if hit { inlineHits.wrappingAdd(1, ordering: .relaxed) }
        inlineWaitSlots.wrappingAdd(1, ordering: .releasing)
    }

    // MARK: - Timers

    func armTimer(_ deadline: Deadline, registration: IORegistration, token: UInt64, direction: IODirection) {
        insertTimer(TimerEntry(deadline: deadline.uptimeNanoseconds, token: token, action: .io(registration, direction)))
    }

    private func insertTimer(_ entry: TimerEntry) {
        let mustWake = state.withLock { state -> Bool in
            state.timers.insert(entry)
            return entry.deadline < state.sleepingUntil
        }
        if mustWake { wake() }
    }

    /// Runs `action` on the reactor's thread once `deadline` passes, unless the returned timer is
    /// cancelled first. The action must be short and must not block: resume a continuation, flip
    /// a flag. One heap insertion, no task and no allocation beyond the closure's context.
    public func schedule(at deadline: Deadline, _ action: @escaping @Sendable () -> Void) -> ReactorTimer {
        let token = makeToken()
        insertTimer(TimerEntry(deadline: deadline.uptimeNanoseconds, token: token, action: .callback(action)))
        return ReactorTimer(token: token, reactor: self)
    }

    func disarmTimer(token: UInt64) {
        state.withLock { _ = $0.timers.remove(token: token) }
    }

    /// Whether the calling thread is this reactor's.
    public var isReactorThread: Bool { threadID.load(ordering: .relaxed) == UInt(bitPattern: Int(bitPattern: pthread_self())) }

    private func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(wakeDescriptor, $0.baseAddress, 8) }
    }

    // MARK: - The loop

    private func run() {
        threadID.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .relaxed)
        let capacity = 256
        let eventSize = ctransport_epoll_event_size()
        let events = UnsafeMutableRawPointer.allocate(byteCount: eventSize * capacity, alignment: 16)
        defer { events.deallocate() }
        var ready: [(IORegistration, UInt32)] = []
        ready.reserveCapacity(capacity)
        var expired: [TimerEntry] = []
        var jobs: [UnownedJob] = []

        while true {
            let now = MonotonicClock.nanoseconds()
            let (timeout, stop) = state.withLock { state -> (Int32, Bool) in
                if state.isShuttingDown && state.registrations.isEmpty && state.jobs.isEmpty {
                    state.hasStopped = true
                    return (0, true)
                }
                while let first = state.timers.first, first.deadline <= now {
                    expired.append(state.timers.removeFirst())
                }
                // Tasks are queued to run here: poll without sleeping, then run them.
                if !state.jobs.isEmpty { return (0, false) }
                guard let first = state.timers.first else {
                    // Idle, wake once a second anyway: a timer armed meanwhile for a second or
                    // more ahead (a request's timeout) then needs no wake-up write.
                    state.sleepingUntil = now + Self.idleTick
                    return (Int32(Self.idleTick / 1_000_000), false)
                }
                state.sleepingUntil = first.deadline
                let milliseconds = (first.deadline - now + 999_999) / 1_000_000
                return (Int32(clamping: milliseconds), false)
            }
            if stop { break }
            var resumed = !expired.isEmpty
            // Whose task was resumed: one registration's id, or `.max` for several or a timer.
            var resumedID: UInt64 = resumed ? .max : 0
            for entry in expired {
                switch entry.action {
                case .io(let registration, let direction): registration.deadlinePassed(token: entry.token, direction: direction)
                case .callback(let action): action()
                }
            }
            expired.removeAll(keepingCapacity: true)

            let count = epoll_wait(epollDescriptor, events.assumingMemoryBound(to: epoll_event.self), Int32(capacity), timeout)
            if count < 0 {
                if errno == EINTR { continue }
                // epoll_wait fails only for programming errors (EBADF, EINVAL); back off and retry.
                usleep(1000)
                continue
            }
            state.withLock { state in
                state.sleepingUntil = 0
                for index in 0..<Int(count) {
                    let event = events.advanced(by: index * eventSize).assumingMemoryBound(to: epoll_event.self)
                    let data = ctransport_epoll_event_data(event)
                    if data == 0 { continue }
                    if let registration = state.registrations[data] {
                        ready.append((registration, ctransport_epoll_event_events(event)))
                    }
                    socketEvents.wrappingAdd(1, ordering: .relaxed)
                }
            }
            for index in 0..<Int(count) {
                let event = events.advanced(by: index * eventSize).assumingMemoryBound(to: epoll_event.self)
                if ctransport_epoll_event_data(event) == 0 {
                    var value: UInt64 = 0
                    _ = withUnsafeMutableBytes(of: &value) { Glibc.read(wakeDescriptor, $0.baseAddress, 8) }
                }
            }
            // A handler (a reader run on this thread) may have resumed tasks too: that asks for
            // `ppoll` waits' threads back, but does not make the reactor busy, so a requester
            // may still wait inline beside a connection whose handler serves its responder.
            var ranHandler = false
            for (registration, mask) in ready {
                switch registration.ready(mask: mask) {
                case .none:
                    break
                case .resumedTask:
                    resumed = true
                    resumedID = resumedID == 0 || resumedID == registration.id ? registration.id : .max
                case .ranHandler:
                    ranHandler = true
                }
            }
            ready.removeAll(keepingCapacity: true)
            runJobs(&jobs)
            if resumed {
                lastResumedID.store(resumedID, ordering: .relaxed)
                lastResumeAt.store(MonotonicClock.nanoseconds(), ordering: .relaxed)
            }
            if resumed || ranHandler { interruptInlineWaits() }
        }
        Glibc.close(wakeDescriptor)
        Glibc.close(inlineWakeDescriptor)
        Glibc.close(epollDescriptor)
    }
}

// MARK: - The reactor as a task executor

/// A task that prefers the reactor as its executor (`withTaskExecutorPreference(reactor)` or
/// `Task(executorPreference: reactor)`) runs on the reactor's thread: when one of its sockets
/// becomes ready, the reactor resumes it in the same turn, with no other thread to wake, as a
/// SwiftNIO event loop runs its channel's code. Such a task must not block or compute for long:
/// while it runs, no socket of the reactor is served. Reads never wait inline there (the wait
/// would stop the polling); they suspend and are resumed by the next turn.
extension Reactor: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let (queued, mustWake) = state.withLock { state -> (Bool, Bool) in
            guard !state.hasStopped else { return (false, false) }
            state.jobs.append(job)
            // Asleep in epoll_wait (or about to be): a write to the eventfd wakes it. From its
            // own thread, or while it polls without sleeping, the job waits for the turn's end.
            return (true, state.sleepingUntil != 0)
        }
        if mustWake { wake() }
        // A reactor that was shut down has no thread left: its tasks go on in the global pool
        // rather than never.
        if !queued { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    /// Jobs this reactor has run as a task executor.
    public var executorJobCount: Int { jobsRun.load(ordering: .relaxed) }

    /// Runs the jobs queued so far (those they queue run in the next turn, after the sockets).
    fileprivate func runJobs(_ jobs: inout [UnownedJob]) {
        state.withLock { state in
            guard !state.jobs.isEmpty else { return }
            swap(&jobs, &state.jobs)
        }
        guard !jobs.isEmpty else { return }
        let executor = asUnownedTaskExecutor()
        for job in jobs { job.runSynchronously(on: executor) }
        jobsRun.wrappingAdd(jobs.count, ordering: .relaxed)
        jobs.removeAll(keepingCapacity: true)
    }
}

enum IODirection: Sendable {
    case read
    case write
}

struct ReactorState: ~Copyable {
    var registrations: [UInt64: IORegistration] = [:]
    /// Tasks queued to run on the reactor's thread (see `Reactor.enqueue`).
    var jobs: [UnownedJob] = []
    /// The thread has ended (after ``Reactor/shutdown()``); jobs go to the global executor.
    var hasStopped = false
    var timers = TimerHeap()
    var sleepingUntil: UInt64 = 0
    var isShuttingDown = false
}

struct TimerEntry {
    enum Action {
        /// An I/O wait's deadline.
        case io(IORegistration, IODirection)
        /// A scheduled closure.
        case callback(@Sendable () -> Void)
    }

    var deadline: UInt64
    var token: UInt64
    var action: Action
}

/// A closure scheduled with ``Reactor/schedule(at:_:)``.
public struct ReactorTimer: Sendable {
    let token: UInt64
    let reactor: Reactor

    /// Removes the timer; true when it had not fired yet (its action will then never run).
    @discardableResult
    public func cancel() -> Bool {
        reactor.state.withLock { $0.timers.remove(token: token) != nil }
    }
}

/// A binary min-heap of deadlines that can also remove an entry by its token in O(log n).
struct TimerHeap {
    private var entries: [TimerEntry] = []
    private var positions: [UInt64: Int] = [:]

    var count: Int { entries.count }
    var first: TimerEntry? { entries.first }

    mutating func insert(_ entry: TimerEntry) {
        entries.append(entry)
        positions[entry.token] = entries.count - 1
        siftUp(entries.count - 1)
    }

    mutating func removeFirst() -> TimerEntry {
        remove(at: 0)
    }

    mutating func remove(token: UInt64) -> TimerEntry? {
        guard let index = positions[token] else { return nil }
        return remove(at: index)
    }

    private mutating func remove(at index: Int) -> TimerEntry {
        let removed = entries[index]
        positions.removeValue(forKey: removed.token)
        let last = entries.removeLast()
        if index < entries.count {
            entries[index] = last
            positions[last.token] = index
            siftDown(index)
            siftUp(index)
        }
        return removed
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < entries.count else { return }
            var smallest = left
            let right = left + 1
            if right < entries.count && entries[right].deadline < entries[left].deadline { smallest = right }
            guard entries[smallest].deadline < entries[parent].deadline else { return }
            swapAt(parent, smallest)
            parent = smallest
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        entries.swapAt(a, b)
        positions[entries[a].token] = a
        positions[entries[b].token] = b
    }
}

/// Starts a detached POSIX thread running a closure.
enum ReactorThread {
    final class Box {
        let body: () -> Void
        let name: String
        init(body: @escaping () -> Void, name: String) {
            self.body = body
            self.name = name
        }
    }

    static func start(name: String, _ body: @escaping () -> Void) -> Bool {
        let box = Unmanaged.passRetained(Box(body: body, name: name))
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            let box = Unmanaged<Box>.fromOpaque(argument).takeRetainedValue()
            ctransport_set_thread_name(String(box.name.prefix(15)))
            box.body()
            return nil
        }, box.toOpaque())
        if result == 0 {
            pthread_detach(thread)
            return true
        }
        box.release()
        return false
    }
}
