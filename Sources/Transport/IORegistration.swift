import CTransport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A socket's entry in the reactor: its descriptor, the readiness edges seen per direction, at
/// most one suspended waiter per direction, and the count of system calls in flight, so that the
/// descriptor is closed only when no call can still be using its number.
final class IORegistration: Sendable {
    let id: UInt64
    let descriptor: Int32
    let endpoint: Endpoint
    let reactor: Reactor
    private let state = Mutex(IOState())

    init(id: UInt64, descriptor: Int32, endpoint: Endpoint, reactor: Reactor) {
        self.id = id
        self.descriptor = descriptor
        self.endpoint = endpoint
        self.reactor = reactor
    }

    /// Whether ``close()`` was called.
    var isClosed: Bool { state.withLock { $0.isClosed } }

    /// Marks a system call as started and returns the readiness count of `direction`, to be
    /// handed to ``wait(for:seenEpoch:deadline:)`` if the call reports EAGAIN.
    func begin(_ direction: IODirection) throws(TransportError) -> UInt64 {
        let result = state.withLock { state -> UInt64? in
            if state.isClosed { return nil }
            state.callsInFlight += 1
            return direction == .read ? state.readEpoch : state.writeEpoch
        }
        guard let result else { throw closedError() }
        return result
    }

    /// ``begin(_:)`` for a `recv` that blocks (an inline wait): ``close()`` shuts the socket
    /// down while one is in flight, which ends it at once. Pair with ``endBlockingRead()``.
    func beginBlockingRead() throws(TransportError) -> UInt64 {
        let result = state.withLock { state -> UInt64? in
            if state.isClosed { return nil }
            state.callsInFlight += 1
            state.blockingReads += 1
            return state.readEpoch
        }
        guard let result else { throw closedError() }
        return result
    }

    func endBlockingRead() {
        state.withLock { $0.blockingReads -= 1 }
        end()
    }

    /// Marks a system call begun with ``begin(_:)`` as finished.
    func end() {
        let mustRelease = state.withLock { state -> Bool in
            state.callsInFlight -= 1
            return state.claimRelease()
        }
        if mustRelease { release() }
    }

    /// Suspends until `direction` sees a readiness edge after `seenEpoch`, the deadline passes,
    /// the task is cancelled, or the registration is closed.
    func wait(for direction: IODirection, seenEpoch: UInt64, deadline: Deadline) async throws {
        if deadline.hasPassed {
            throw TransportError(.timedOut, endpoint: endpoint, message: direction.timeoutMessage)
        }
        let token = reactor.makeToken()
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> WaitOutcome in
                    if state.isClosed { return .fail(closedError()) }
                    let epoch = direction == .read ? state.readEpoch : state.writeEpoch
                    if epoch != seenEpoch { return .retry }
                    // Data and the hang-up may come in one edge; a read that then took only the
                    // data must not wait for an edge that will never come.
                    if direction == .read && state.readClosed { return .retry }
                    if Task.isCancelled {
                        return .fail(TransportError(.cancelled, endpoint: endpoint, message: direction.cancelMessage))
                    }
                    let waiter = Waiter(token: token, resumption: .task(continuation), hasDeadline: deadline != .never)
                    switch direction {
                    case .read:
                        if state.readWaiter != nil { return .fail(concurrentError(direction)) }
                        state.readWaiter = waiter
                    case .write:
                        if state.writeWaiter != nil { return .fail(concurrentError(direction)) }
                        state.writeWaiter = waiter
                    }
                    return .stored
                }
                switch outcome {
                case .retry:
                    continuation.resume()
                case .fail(let error):
                    continuation.resume(throwing: error)
                case .stored:
                    reactor.waiterStored()
                    if deadline != .never {
                        reactor.armTimer(deadline, registration: self, token: token, direction: direction)
                    }
                    if direction == .read { armRead() }
                }
            }
        } onCancel: {
            if let waiter = takeWaiter(direction, token: token) {
                waiter.resume(throwing: TransportError(.cancelled, endpoint: endpoint, message: direction.cancelMessage))
            }
        }
    }

    /// Stores `handler` as the read waiter, to be called once at the first read edge after
    /// `seenEpoch` — on the reactor's thread — or with the error when the registration closes.
    /// Returns false, storing nothing, when such an edge came already or the peer has shut its
    /// side: read again instead. Throws when closed or when another read waits.
    func notifyWhenReadable(seenEpoch: UInt64, _ handler: @escaping @Sendable (TransportError?) -> Void) throws(TransportError) -> Bool {
        let token = reactor.makeToken()
        let outcome = state.withLock { state -> WaitOutcome in
            if state.isClosed { return .fail(closedError()) }
            if state.readEpoch != seenEpoch || state.readClosed { return .retry }
            if state.readWaiter != nil { return .fail(concurrentError(.read)) }
            state.readWaiter = Waiter(token: token, resumption: .handler(handler), hasDeadline: false)
            return .stored
        }
        switch outcome {
        case .retry:
            return false
        case .fail(let error):
            throw error
        case .stored:
            reactor.waiterStored()
            armRead()
            return true
        }
    }

    /// Takes back a handler stored with ``notifyWhenReadable(seenEpoch:_:)`` that still waits:
    /// true when it was there (it will not be called). For a caller about to read in the
    /// handler's place; it must store a handler again (or end reading) when done.
    func takeReadHandler() -> Bool {
        let taken = state.withLock { state -> Bool in
            guard let waiter = state.readWaiter, case .handler = waiter.resumption else { return false }
            state.readWaiter = nil
            return true
        }
        if taken { reactor.waiterTaken() }
        return taken
    }

    /// Stops the reactor watching for input, for a reader about to wait for it inline on its own
    /// thread: an edge the reactor saw would only wake the reactor's thread for data the inline
    /// wait takes, a second context switch per round trip. Input stays unwatched until a reader
    /// suspends on the reactor again (``armRead()``), so a client that keeps waiting inline pays
    /// the one `epoll_ctl` once. Call within ``begin(_:)`` and ``end()``.
    func disarmRead() {
        let change = state.withLock { state -> Bool in
            guard state.readArmed, !state.isClosed, state.readWaiter == nil else { return false }
            state.readArmed = false
            return true
        }
        if change && !reactor.modify(self, events: Reactor.readDisarmedEvents) {
            state.withLock { $0.readArmed = true }  // the kernel kept watching
        }
    }

    /// Watches for input again, after a reader stored itself as the read waiter. Re-arming makes
    /// epoll report input that is already there as a new edge, so none that came while input
    /// was unwatched is missed: the waiter is resumed by it.
    private func armRead() {
        let change = state.withLock { state -> Bool in
            guard !state.readArmed, !state.isClosed else { return false }
            state.readArmed = true
            state.callsInFlight += 1  // holds the descriptor's number for the epoll_ctl
            return true
        }
        guard change else { return }
        if !reactor.modify(self, events: Reactor.armedEvents) {
            // Not watched after all: wake the waiter so that its read finds out what is wrong.
            ready(mask: EPOLLIN.rawValue)
        }
        end()
    }

    /// What ``ready(mask:)`` did.
    enum Readiness {
        /// Nobody waited.
        case none
        /// A suspended task was resumed.
        case resumedTask
        /// Only a handler ran (on the reactor's thread).
        case ranHandler
    }

    /// Called by the reactor with the epoll event mask: whether it resumed a task or ran a handler.
    @discardableResult
    func ready(mask: UInt32) -> Readiness {
        let readable = mask & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        let writable = mask & (EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        let (reader, writer) = state.withLock { state -> (Waiter?, Waiter?) in
            var reader: Waiter?
            var writer: Waiter?
            if readable {
                state.readEpoch &+= 1
                // Only RDHUP: the receive side is shut for good (a FIN or a reset), so a read
                // returns at once from then on. EPOLLHUP alone is also reported for a socket not
                // yet connected, and an error may clear once read.
                if mask & EPOLLRDHUP.rawValue != 0 { state.readClosed = true }
                reader = state.readWaiter
                state.readWaiter = nil
            }
            if writable {
                state.writeEpoch &+= 1
                writer = state.writeWaiter
                state.writeWaiter = nil
            }
            return (reader, writer)
        }
        if let reader { finish(reader) }
        if let writer { finish(writer) }
        if reader?.isTask == true || writer?.isTask == true { return .resumedTask }
        return reader != nil || writer != nil ? .ranHandler : .none
    }

    /// Called by the reactor when a waiter's deadline passes (its timer is already out of the heap).
    func deadlinePassed(token: UInt64, direction: IODirection) {
        guard let waiter = removeWaiter(direction, token: token) else { return }
        reactor.waiterTaken()
        waiter.resume(throwing: TransportError(.timedOut, endpoint: endpoint, message: direction.timeoutMessage))
    }

    /// Closes the registration: wakes every waiter with `.closed` and closes the descriptor as
    /// soon as no system call is in flight. Calling it again does nothing.
    func close() {
        let (waiters, mustRelease, blocked) = state.withLock { state -> ([Waiter], Bool, Bool) in
            if state.isClosed { return ([], false, false) }
            state.isClosed = true
            let waiters = [state.readWaiter, state.writeWaiter].compactMap { $0 }
            state.readWaiter = nil
            state.writeWaiter = nil
            return (waiters, state.claimRelease(), state.blockingReads > 0)
        }
        // A blocking inline read holds the descriptor (so it is not released yet): shutting the
        // socket down ends that read now.
        if blocked { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }
        for waiter in waiters {
            if waiter.hasDeadline { reactor.disarmTimer(token: waiter.token) }
            reactor.waiterTaken()
            waiter.resume(throwing: closedError())
        }
        // A read of this socket may be waiting inline; it then sees the close at once.
        reactor.interruptInlineWaits()
        if mustRelease { release() }
    }

    private func release() {
        reactor.deregister(self)
        Glibc.close(descriptor)
    }

    private func takeWaiter(_ direction: IODirection, token: UInt64) -> Waiter? {
        let waiter = removeWaiter(direction, token: token)
        if let waiter {
            if waiter.hasDeadline { reactor.disarmTimer(token: waiter.token) }
            reactor.waiterTaken()
        }
        return waiter
    }

    /// Removes the waiter of `direction` if it is still the one identified by `token`.
    private func removeWaiter(_ direction: IODirection, token: UInt64) -> Waiter? {
        state.withLock { state -> Waiter? in
            switch direction {
            case .read:
                guard state.readWaiter?.token == token else { return nil }
                defer { state.readWaiter = nil }
                return state.readWaiter
            case .write:
                guard state.writeWaiter?.token == token else { return nil }
                defer { state.writeWaiter = nil }
                return state.writeWaiter
            }
        }
    }

    private func finish(_ waiter: Waiter) {
        if waiter.hasDeadline { reactor.disarmTimer(token: waiter.token) }
        reactor.waiterTaken()
        waiter.resume()
    }

    func closedError() -> TransportError {
        TransportError(.closed, endpoint: endpoint, message: "connection is closed")
    }

    private func concurrentError(_ direction: IODirection) -> TransportError {
        TransportError(
            .concurrentOperation, endpoint: endpoint,
            message: direction == .read ? "another read is already pending" : "another write is already pending"
        )
    }
}

struct Waiter {
    /// Who waits: a suspended task, or a handler called on the thread that ends the wait (the
    /// reactor's, for an edge).
    enum Resumption {
        case task(UnsafeContinuation<Void, any Error>)
        case handler(@Sendable (TransportError?) -> Void)
    }

    let token: UInt64
    let resumption: Resumption
    let hasDeadline: Bool

    /// Whether a suspended task waits (not a handler).
    var isTask: Bool {
        if case .task = resumption { return true }
        return false
    }

    /// Ends the wait: with nothing when the edge came, with `error` otherwise.
    func resume(throwing error: TransportError? = nil) {
        switch resumption {
        case .task(let continuation):
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        case .handler(let handler):
            handler(error)
        }
    }
}

struct IOState {
    var readEpoch: UInt64 = 0
    var writeEpoch: UInt64 = 0
    /// The peer shut its side (EPOLLRDHUP). Sticky: no edge follows it, and a read never blocks
    /// again — it returns what is left, then end of stream or the error.
    var readClosed = false
    /// Whether the reactor watches for input (see ``IORegistration/disarmRead()``).
    var readArmed = true
    var readWaiter: Waiter?
    var writeWaiter: Waiter?
    var isClosed = false
    var callsInFlight = 0
    /// Blocking inline reads in flight (see ``IORegistration/beginBlockingRead()``).
    var blockingReads = 0
    var isReleased = false

    /// Returns true exactly once: when closed and no call is in flight.
    mutating func claimRelease() -> Bool {
        guard isClosed, callsInFlight == 0, !isReleased else { return false }
        isReleased = true
        return true
    }
}

enum WaitOutcome {
    case retry
    case stored
    case fail(TransportError)
}

extension IODirection {
    var timeoutMessage: String { self == .read ? "read timed out" : "write timed out" }
    var cancelMessage: String { self == .read ? "read cancelled" : "write cancelled" }
}
