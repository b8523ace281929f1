import CTransport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Options for opening a connection.
public struct ConnectOptions: Sendable {
    /// One deadline for resolving and for trying every resolved address in turn.
    public var timeout: Duration
    /// Disables Nagle's algorithm (TCP only).
    public var noDelay: Bool
    /// Enables TCP keep-alive probes (TCP only).
    public var keepAlive: Bool
    /// When set, TLS starts right after the TCP connection is up (direct TLS).
    public var tls: TLSContext?
    /// The name sent as SNI and checked against the certificate; defaults to the endpoint's host.
    public var serverName: String?
    /// How long a read that finds no data, and whose caller says its thread would otherwise go
    /// idle (`read(into:maximumBytes:deadline:mayWaitInline:)`), may wait on its own thread
    /// before it suspends on the reactor. A reply that comes within it costs one wake-up instead
    /// of two (the reactor's thread, then a pool thread), which is most of a loopback round
    /// trip's overhead. At most one thread fewer than the processors waits so at a time, so the
    /// task pool always keeps a running thread; when the wait runs out, the read suspends on the
    /// reactor. Zero turns it off.
    ///
    /// Up to 10 ms, the wait is the `recv` itself, blocking, with the budget as the socket's
    /// receive timeout (the kernel counts it in scheduler ticks, so a shorter budget lasts up to
    /// one tick): as cheap as a blocking C client's read. Such a wait runs its course even when
    /// the reactor meanwhile resumes another task. A longer budget waits in a `ppoll`, which
    /// costs more per round trip but gives its thread back as soon as the reactor resumes
    /// another task.
    ///
    /// A reply ends the wait the moment it comes: the budget only bounds the wait for a slow one.
    /// The default, ``defaultInlineReadWait``, is one scheduler tick.
    public var inlineReadWait: Duration

    /// 4 ms: one scheduler tick at the common 250 Hz. The wait's timer then never expires before
    /// the CPU's next timer event, so arming and cancelling it reprograms no timer hardware. A
    /// shorter budget becomes the CPU's next event on every wait and is cancelled when the reply
    /// comes: two reprogrammings per round trip, each a trap to the hypervisor on a virtual
    /// machine. On a 2-core VM that cost about 7 µs of CPU per round trip (250 µs against 4 ms,
    /// Redis SET on loopback: 27.8 against 20.7 µs per command).
    public static let defaultInlineReadWait: Duration = .milliseconds(4)

    /// Creates options; every parameter has the common default.
    public init(
        timeout: Duration = .seconds(10), noDelay: Bool = true, keepAlive: Bool = true,
        tls: TLSContext? = nil, serverName: String? = nil, inlineReadWait: Duration = ConnectOptions.defaultInlineReadWait
    ) {
        self.timeout = timeout
        self.noDelay = noDelay
        self.keepAlive = keepAlive
        self.tls = tls
        self.serverName = serverName
        self.inlineReadWait = inlineReadWait
    }
}

/// A non-blocking stream socket (TCP or Unix domain), optionally upgraded to TLS.
///
/// Every operation tries its system call first and suspends on the reactor only when the socket
/// is not ready. At most one read may be pending at a time; writes from several tasks are
/// serialized in arrival order. Closing is idempotent and fails pending operations with `.closed`.
public final class Connection: Sendable {
    /// Where this connection goes.
    public let endpoint: Endpoint
    let registration: IORegistration
    private let sendLock = AsyncLock()
    private let tls = Mutex<TLSSession?>(nil)
    private let tlsActive = Atomic<Bool>(false)
    private let inboundCiphertext = Mutex(ByteBuffer())
    private let writeCalls = Atomic<Int>(0)
    private let readCalls = Atomic<Int>(0)
    private let inlineWaits = Atomic<Int>(0)
    /// One more than the read readiness count seen by the last read that came back short (0:
    /// none). A short read emptied the socket, so the next read waits for a newer edge first
    /// instead of spending a system call on EAGAIN; reads are one at a time, so relaxed is enough.
    private let drainedAtEpoch = Atomic<UInt64>(0)
    /// Whether inline waits are blocking `recv` calls (see ``enableBlockingInlineReads()``).
    private let blockingInline = Atomic<Bool>(false)
    /// ``ConnectOptions/inlineReadWait`` in nanoseconds (0: off).
    private let inlineReadWait: Int64

    private init(endpoint: Endpoint, registration: IORegistration, inlineReadWait: Duration) {
        self.endpoint = endpoint
        self.registration = registration
        self.inlineReadWait = inlineReadWait <= .zero ? 0 : Int64(clamping: inlineReadWait.saturatingNanoseconds)
    }

    convenience init(accepted descriptor: Int32, endpoint: Endpoint, reactor: Reactor) throws {
        self.init(endpoint: endpoint, registration: try reactor.register(descriptor: descriptor, endpoint: endpoint), inlineReadWait: .zero)
    }

    deinit {
        registration.close()
    }

    /// The socket descriptor (for diagnostics; do not read or write it directly).
    public var descriptor: Int32 { registration.descriptor }
    /// Whether ``close()`` was called.
    public var isClosed: Bool { registration.isClosed }
    /// The reactor that serves this connection.
    public var reactor: Reactor { registration.reactor }
    /// Whether TLS is active on this connection.
    public var isTLS: Bool { tlsActive.load(ordering: .acquiring) }
    /// Whether bytes are waiting or the peer hung up, asked without waiting (one `poll`). On a
    /// connection nobody is reading — an idle pooled one — either means it is not fit to use:
    /// the server closed it, or said something (a FATAL before closing) nobody asked for.
    public var hasUnexpectedInput: Bool {
        guard !isClosed else { return true }
        return ctransport_has_input_or_hangup(descriptor) != 0
    }
    /// Number of send system calls made so far (each may carry several buffers).
    public var writeSystemCallCount: Int { writeCalls.load(ordering: .relaxed) }
    /// Number of receive system calls made so far.
    public var readSystemCallCount: Int { readCalls.load(ordering: .relaxed) }
    /// Number of reads that waited for input on their own thread (see ``ConnectOptions/inlineReadWait``).
    public var inlineWaitCount: Int { inlineWaits.load(ordering: .relaxed) }

    // MARK: - Connecting

    /// Opens a connection to `endpoint`. For a host name every resolved address (IPv4 and IPv6)
    /// is tried in turn until one answers, all under one deadline of `options.timeout`.
    public static func connect(
        to endpoint: Endpoint, options: ConnectOptions = ConnectOptions(), reactor: Reactor = .shared
    ) async throws -> Connection {
        let deadline = Deadline.after(options.timeout)
        let connection: Connection
        switch endpoint {
        case .tcp(let host, let port):
            guard (1...65535).contains(port) else {
                throw TransportError(.connectFailed, endpoint: endpoint, message: "port \(port) is outside 1...65535")
            }
            let addresses = try await Resolver.resolve(host: host, port: port, endpoint: endpoint)
            var failures: [String] = []
            var lastError: TransportError?
            var opened: Connection?
            for address in addresses {
                do {
                    opened = try await open(address: address, endpoint: endpoint, options: options, deadline: deadline, reactor: reactor)
                    break
                } catch let error as TransportError {
                    if error.kind == .cancelled || error.kind == .timedOut { throw error }
                    failures.append("\(address): \(error.errno.map { String(cString: strerror($0)) } ?? error.message)")
                    lastError = error
                }
            }
            guard let opened else {
                var error = lastError ?? TransportError(.connectFailed, endpoint: endpoint, message: "no address to connect to")
                error.message = "could not connect; tried " + failures.joined(separator: "; ")
                error.errno = nil
                throw error
            }
            connection = opened
        case .unix(let path):
            connection = try await openUnix(path: path, endpoint: endpoint, options: options, deadline: deadline, reactor: reactor)
        }
        if let context = options.tls {
            let name = options.serverName ?? endpoint.host
            do {
                try await connection.startTLS(context, serverName: name, deadline: deadline)
            } catch {
                connection.close()
                throw error
            }
        }
        return connection
    }

    private static func open(
        address: SocketAddress, endpoint: Endpoint, options: ConnectOptions, deadline: Deadline, reactor: Reactor
    ) async throws -> Connection {
        let descriptor = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw TransportError.fromErrno(errno, operation: "socket", endpoint: endpoint)
        }
        var one: Int32 = 1
        if options.noDelay {
            _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        if options.keepAlive {
            _ = setsockopt(descriptor, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let connection = try adopt(descriptor, endpoint: endpoint, reactor: reactor, inlineReadWait: options.inlineReadWait)
        do {
            try await connection.finishConnect(deadline: deadline) { descriptor in
                address.withSockAddr { Glibc.connect(descriptor, $0, $1) }
            }
            connection.enableBlockingInlineReads()
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    private static func openUnix(
        path: String, endpoint: Endpoint, options: ConnectOptions, deadline: Deadline, reactor: Reactor
    ) async throws -> Connection {
        var address = sockaddr_un()
        let length = ctransport_make_sockaddr_un(&address, path)
        guard length > 0 else {
            throw TransportError(.connectFailed, endpoint: endpoint, message: "Unix socket path is too long")
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw TransportError.fromErrno(errno, operation: "socket", endpoint: endpoint)
        }
        let connection = try adopt(descriptor, endpoint: endpoint, reactor: reactor, inlineReadWait: options.inlineReadWait)
        do {
            try await connection.finishConnect(deadline: deadline) { descriptor in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(length)) }
                }
            }
            connection.enableBlockingInlineReads()
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Registers a new socket with the reactor, closing the descriptor if that fails.
    private static func adopt(_ descriptor: Int32, endpoint: Endpoint, reactor: Reactor, inlineReadWait: Duration) throws -> Connection {
        do {
            return Connection(
                endpoint: endpoint, registration: try reactor.register(descriptor: descriptor, endpoint: endpoint), inlineReadWait: inlineReadWait)
        } catch {
            Glibc.close(descriptor)
            throw error
        }
    }

    private func finishConnect(deadline: Deadline, _ start: (Int32) -> Int32) async throws {
        let epoch = try registration.begin(.write)
        let result = start(registration.descriptor)
        let code = errno
        registration.end()
        if result == 0 { return }
        switch code {
        case EINPROGRESS, EAGAIN, EINTR:
            break
        case ENOENT:
            throw TransportError(.connectionRefused, endpoint: endpoint, errno: code, message: "connect failed: no socket at this path")
        default:
            throw TransportError.fromErrno(code, operation: "connect", endpoint: endpoint)
        }
        do {
            try await registration.wait(for: .write, seenEpoch: epoch, deadline: deadline)
        } catch var error as TransportError {
            if error.kind == .timedOut { error.message = "connect timed out" }
            if error.kind == .cancelled { error.message = "connect cancelled" }
            throw error
        }
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try registration.begin(.write)
        let status = getsockopt(registration.descriptor, SOL_SOCKET, SO_ERROR, &failure, &length)
        let statusCode = errno
        registration.end()
        if status != 0 { throw TransportError.fromErrno(statusCode, operation: "connect", endpoint: endpoint) }
        if failure != 0 { throw TransportError.fromErrno(failure, operation: "connect", endpoint: endpoint) }
    }

    // MARK: - Reading

    /// Reads at least one byte into `buffer` (growing it as needed, at most `maximumBytes`) and
    /// returns how many were read. Throws `.endOfStream` when the peer has closed, `.timedOut`
    /// after `deadline`, `.cancelled` if the task is cancelled while waiting.
    ///
    /// `mayWaitInline` says that the caller's thread would otherwise go idle: one request is in
    /// flight and its caller waits for the reply. Then the read may wait on this thread for up to
    /// ``ConnectOptions/inlineReadWait`` before suspending. Leave it off where other tasks have
    /// work to do meanwhile (pipelines, concurrent callers, long-lived readers): the thread would
    /// be kept from them.
    @discardableResult
    public func read(
        into buffer: inout ByteBuffer, maximumBytes: Int = 65536, deadline: Deadline = .never, mayWaitInline: Bool = false
    ) async throws -> Int {
        if tlsActive.load(ordering: .acquiring) {
            return try await readTLS(into: &buffer, maximumBytes: maximumBytes, deadline: deadline, mayWaitInline: mayWaitInline)
        }
        return try await readPlain(into: &buffer, maximumBytes: maximumBytes, deadline: deadline, mayWaitInline: mayWaitInline)
    }

    private func readPlain(into buffer: inout ByteBuffer, maximumBytes: Int, deadline: Deadline, mayWaitInline: Bool) async throws -> Int {
        let inline = mayWaitInline && inlineReadWait > 0
        let limit = Swift.max(1, maximumBytes)
        let drained = drainedAtEpoch.exchange(0, ordering: .relaxed)
        if drained != 0 {
            if inline {
                let received = try receiveInline(into: &buffer, limit: limit, deadline: deadline)
                if received > 0 { return received }
            }
            try await registration.wait(for: .read, seenEpoch: drained - 1, deadline: deadline)
        }
        while true {
            let (received, epoch) = try receiveOnce(into: &buffer, limit: limit)
            if received > 0 { return received }
            if inline {
                let received = try receiveInline(into: &buffer, limit: limit, deadline: deadline)
                if received > 0 { return received }
            }
            try await registration.wait(for: .read, seenEpoch: epoch, deadline: deadline)
        }
    }

    /// Waits for input on the calling thread and reads it, when the reactor grants an inline
    /// wait (see ``ConnectOptions/inlineReadWait``): the bytes read, or 0 when the wait was not
    /// granted or ended with nothing (the caller then suspends on the reactor; an edge that
    /// came meanwhile is in the readiness count, so nothing is missed).
    ///
    /// On a socket set up for it (``enableBlockingInlineReads()``) the wait is the `recv`
    /// itself, blocking for at most the budget: on this kind of machine that costs what a
    /// blocking C client's read costs, where a `ppoll` and then a `recv` cost a fifth more per
    /// round trip. Such a wait is not cut short when the reactor resumes another task (only by
    /// its budget, a few milliseconds at most); a close ends it at once. Longer budgets, and
    /// waits a near deadline shortens, use the interruptible `ppoll`.
    @inline(never)  // inlined into the async reads, Swift 6.3 crashes splitting their coroutines
    private func receiveInline(into buffer: inout ByteBuffer, limit: Int, deadline: Deadline) throws(TransportError) -> Int {
        if blockingInline.load(ordering: .relaxed),
            deadline == .never || deadline.uptimeNanoseconds >= MonotonicClock.nanoseconds() &+ UInt64(inlineReadWait)
        {
            return try receiveBlocking(into: &buffer, limit: limit)
        }
        guard try waitInline(deadline: deadline) else { return 0 }
        return try receiveOnce(into: &buffer, limit: limit).count
    }

    /// A blocking `recv` of at most `limit` bytes, bounded by the socket's receive timeout (the
    /// inline budget), when the reactor grants the wait; 0 when not granted, timed out or
    /// interrupted. Throws `.closed` when ``close()`` ended it, `.endOfStream` when the peer did.
    private func receiveBlocking(into buffer: inout ByteBuffer, limit: Int) throws(TransportError) -> Int {
        guard !Task.isCancelled else { return 0 }
        let reactor = registration.reactor
        guard reactor.claimInlineWait(for: registration.id, now: MonotonicClock.nanoseconds()) else { return 0 }
        inlineWaits.wrappingAdd(1, ordering: .relaxed)
        var received = 0
        defer { reactor.releaseInlineWait(hit: received > 0) }
        // Counted as a blocking call in flight: a close() shuts the socket down to end it, and
        // cannot free the descriptor's number while the call holds it.
        let epoch = try registration.beginBlockingRead()
        // Input is unwatched during the wait, as for the ppoll wait (see disarmRead()).
        registration.disarmRead()
        let code: Int32
        (received, code) = receive(into: &buffer, limit: limit, flags: 0, epoch: epoch)
        registration.endBlockingRead()
        if received > 0 { return received }
        if registration.isClosed { throw registration.closedError() }
        if received == 0 { throw TransportError(.endOfStream, endpoint: endpoint, message: "connection closed by peer") }
        switch code {
        case EAGAIN, EWOULDBLOCK, EINTR: return 0
        default: throw TransportError.fromErrno(code, operation: "read", endpoint: endpoint)
        }
    }

    /// Makes inline waits blocking `recv` calls (see ``receiveInline(into:limit:deadline:)``),
    /// for a budget of at most ``blockingInlineLimit``: clears the socket's O_NONBLOCK and sets
    /// its receive timeout to the budget. Every other call on the socket passes MSG_DONTWAIT,
    /// so it never blocks. Called once, after the connect; if a call fails, waits stay `ppoll`s.
    private func enableBlockingInlineReads() {
        guard inlineReadWait > 0, inlineReadWait <= Self.blockingInlineLimit else { return }
        let descriptor = registration.descriptor
        var timeout = timeval(tv_sec: Int(inlineReadWait / 1_000_000_000), tv_usec: Int(inlineReadWait % 1_000_000_000 / 1000))
        guard setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else { return }
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags & ~O_NONBLOCK) == 0 else { return }
        blockingInline.store(true, ordering: .relaxed)
    }

    /// The longest inline budget served by a blocking `recv` (nanoseconds): such a wait does not
    /// give its thread back when the reactor resumes another task, so it must stay short.
    static let blockingInlineLimit: Int64 = 10_000_000

    /// One `recv` into `buffer` (at most `limit` bytes; the buffer grows when little room is
    /// left): the bytes read (> 0), or 0 when the socket is empty, with the read readiness count
    /// seen before the call (for a wait). A short read marks the socket as drained; EINTR is
    /// retried; a closed peer throws `.endOfStream`.
    @inline(never)  // inlined into the async reads, Swift 6.3 crashes splitting their coroutines
    private func receiveOnce(into buffer: inout ByteBuffer, limit: Int) throws(TransportError) -> (count: Int, epoch: UInt64) {
        while true {
            let epoch = try registration.begin(.read)
            let (received, code) = receive(into: &buffer, limit: limit, flags: Int32(MSG_DONTWAIT), epoch: epoch)
            registration.end()
            if received > 0 { return (received, epoch) }
            if received == 0 {
                throw TransportError(.endOfStream, endpoint: endpoint, message: "connection closed by peer")
            }
            switch code {
            case EAGAIN, EWOULDBLOCK: return (0, epoch)
            case EINTR: continue
            default: throw TransportError.fromErrno(code, operation: "read", endpoint: endpoint)
            }
        }
    }

    /// The `recv` both reads make, with `flags`, into `buffer` (at most `limit` bytes; the buffer
    /// grows when little room is left): its result and errno. Counts the call, and marks the
    /// socket as drained at `epoch` (the readiness count seen before it) after a short read.
    /// Call within the registration's begin and end.
    private func receive(into buffer: inout ByteBuffer, limit: Int, flags: Int32, epoch: UInt64) -> (received: Int, code: Int32) {
        let minimum = buffer.writableBytes >= Swift.min(limit, 4096) ? 0 : Swift.min(limit, 16384)
        let descriptor = registration.descriptor
        var code: Int32 = 0
        var received = 0
        var requested = 0
        _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: minimum) { region in
            requested = Swift.min(region.count, limit)
            received = recv(descriptor, region.baseAddress, requested, flags)
            if received < 0 { code = errno }
            return Swift.max(received, 0)
        }
        readCalls.wrappingAdd(1, ordering: .relaxed)
        if received > 0, received < requested { drainedAtEpoch.store(epoch &+ 1, ordering: .relaxed) }
        return (received, code)
    }

    /// Waits up to ``ConnectOptions/inlineReadWait`` (and never past `deadline`) for data on the
    /// calling thread, when the reactor grants it. True when the socket became readable; false
    /// when the wait was not granted, ran out, or gave way to a task the reactor resumed. Then
    /// the caller suspends on the reactor as usual (an edge that came meanwhile is in the
    /// readiness count, so nothing is missed).
    private func waitInline(deadline: Deadline) throws(TransportError) -> Bool {
        guard !Task.isCancelled else { return false }
        var budget = inlineReadWait
        let now = MonotonicClock.nanoseconds()
        if deadline != .never {
            guard deadline.uptimeNanoseconds > now else { return false }
            budget = Swift.min(budget, Int64(clamping: deadline.uptimeNanoseconds - now))
        }
        let reactor = registration.reactor
        guard reactor.claimInlineWait(for: registration.id, now: now) else { return false }
        inlineWaits.wrappingAdd(1, ordering: .relaxed)
        var result: Int32 = 0
        defer { reactor.releaseInlineWait(hit: result > 0) }
        // Counted as a call in flight, so a concurrent close() cannot free the descriptor's
        // number for reuse while the poll holds it; such a close interrupts the wait.
        _ = try registration.begin(.read)
        registration.disarmRead()
        result = ctransport_wait_readable(registration.descriptor, reactor.inlineWakeDescriptor, budget)
        registration.end()
        return result > 0
    }

    // MARK: - Synchronous attempts

    /// Reads what has arrived into `buffer` on the calling thread, never suspending: for a
    /// client's fast path, which falls back to ``read(into:maximumBytes:deadline:mayWaitInline:)``
    /// when this returns 0. With `waitingInline`, first waits for input on this thread as
    /// `mayWaitInline` lets a read do (up to ``ConnectOptions/inlineReadWait``, when the reactor
    /// grants it). Returns 0 when nothing came, the wait was not granted, or TLS is active.
    /// Throws `.endOfStream` when the peer has closed, `.closed` after ``close()``.
    public func readNow(into buffer: inout ByteBuffer, maximumBytes: Int = 65536, deadline: Deadline, waitingInline: Bool) throws(TransportError) -> Int {
        guard !tlsActive.load(ordering: .acquiring), inlineReadWait > 0 || !waitingInline else { return 0 }
        if waitingInline {
            drainedAtEpoch.store(0, ordering: .relaxed)
            return try receiveInline(into: &buffer, limit: Swift.max(1, maximumBytes), deadline: deadline)
        } else if drainedAtEpoch.load(ordering: .relaxed) != 0 {
            return 0  // the last read emptied the socket and no wait says more came
        }
        drainedAtEpoch.store(0, ordering: .relaxed)
        let limit = Swift.max(1, maximumBytes)
        let (received, epoch) = try receiveOnce(into: &buffer, limit: limit)
        // Empty: the next read waits for a newer edge instead of asking again.
        if received == 0 { drainedAtEpoch.store(epoch &+ 1, ordering: .relaxed) }
        return received
    }

    // MARK: - Reading on the reactor's thread

    /// Reads what has arrived into `buffer` (at most `maximumBytes`) without waiting: the bytes
    /// read, or 0 when the socket is empty — then ``whenReadable(_:)`` waits for more. Made for
    /// a reader driven by ``whenReadable(_:)``; plain connections only (throws `.tlsFailure`
    /// with TLS active: a TLS record may need a write to go on, so TLS readers use
    /// ``read(into:maximumBytes:deadline:mayWaitInline:)``). Throws `.endOfStream` when the
    /// peer has closed, `.closed` after ``close()``.
    public func receiveAvailable(into buffer: inout ByteBuffer, maximumBytes: Int = 65536) throws(TransportError) -> Int {
        guard !tlsActive.load(ordering: .acquiring) else {
            throw TransportError(.tlsFailure, endpoint: endpoint, message: "a TLS connection cannot be read on the reactor's thread")
        }
        drainedAtEpoch.store(0, ordering: .relaxed)
        let (received, epoch) = try receiveOnce(into: &buffer, limit: Swift.max(1, maximumBytes))
        if received == 0 { drainedAtEpoch.store(epoch &+ 1, ordering: .relaxed) }
        return received
    }

    /// Calls `handler` once, on the reactor's thread, when input arrives after the last
    /// ``receiveAvailable(into:maximumBytes:)`` that found the socket empty or read it short —
    /// or with the error when the connection closes. Returns false, storing nothing, when more
    /// may be there already: read again first.
    ///
    /// For a long-lived reader that hands what it reads to other tasks (a subscriber's
    /// connection): reading where the readiness is seen takes one task wake-up off every
    /// message's way. The handler runs where every socket of the reactor is served, so it must
    /// be short and must never block or wait; it reads, routes, and calls this again. Calls are
    /// never concurrent: each stores the handler for one call.
    public func whenReadable(_ handler: @escaping @Sendable (TransportError?) -> Void) throws(TransportError) -> Bool {
        let drained = drainedAtEpoch.exchange(0, ordering: .relaxed)
        guard drained != 0 else { return false }
        return try registration.notifyWhenReadable(seenEpoch: drained - 1, handler)
    }

    /// Takes back the handler ``whenReadable(_:)`` stored, if it still waits (it will then not
    /// be called): true when taken. The caller reads in the handler's place — for instance
    /// with ``readNow(into:maximumBytes:deadline:waitingInline:)`` on the thread of a task
    /// that waits for a reply — and then stores a handler again with ``whenReadable(_:)``.
    public func takeReadHandler() -> Bool {
        registration.takeReadHandler()
    }

    /// Sends what the socket takes of `buffer` right now, on the calling thread, never
    /// suspending: for a client's fast path, which writes the rest with ``write(_:deadline:)``.
    /// Returns the bytes sent: 0 when the socket is full, another write is in progress, or TLS is
    /// active. The caller must keep its writes in order itself (as a ``WriteQueue``'s flush claim
    /// does): another task's write may come between this one and the rest.
    public func sendNow(_ buffer: ByteBuffer) throws(TransportError) -> Int {
        guard !buffer.isEmpty, !tlsActive.load(ordering: .acquiring), sendLock.tryLock() else { return 0 }
        defer { sendLock.unlock() }
        let descriptor = registration.descriptor
        while true {
            _ = try registration.begin(.write)
            var code: Int32 = 0
            let count = buffer.withUnsafeReadableBytes { raw -> Int in
                let result = send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                if result < 0 { code = errno }
                return result
            }
            registration.end()
            writeCalls.wrappingAdd(1, ordering: .relaxed)
            if count >= 0 { return count }
            switch code {
            case EAGAIN, EWOULDBLOCK: return 0
            case EINTR: continue
            default: throw TransportError.fromErrno(code, operation: "write", endpoint: endpoint)
            }
        }
    }

    // MARK: - Writing

    /// Writes all readable bytes of `buffer` (the buffer itself is not consumed).
    public func write(_ buffer: ByteBuffer, deadline: Deadline = .never) async throws {
        try await write(CollectionOfOne(buffer), deadline: deadline)
    }

    /// Writes several buffers in order, as few system calls as possible (one `sendmsg` with an
    /// iovec per buffer when the socket takes them all). If the write fails after part of the
    /// bytes went out, the connection is closed, since the stream can no longer be framed.
    public func write<Buffers: Collection<ByteBuffer>>(_ buffers: Buffers, deadline: Deadline = .never) async throws {
        do {
            try await sendLock.lock()
        } catch {
            throw TransportError(.cancelled, endpoint: endpoint, message: "write cancelled")
        }
        defer { sendLock.unlock() }
        if tlsActive.load(ordering: .acquiring) {
            try await writeTLS(buffers, deadline: deadline)
        } else {
            try await sendPlain(buffers, deadline: deadline)
        }
    }

    func sendPlain<Buffers: Collection<ByteBuffer>>(_ buffers: Buffers, deadline: Deadline) async throws {
        if buffers.count == 1, let only = buffers.first {
            try await sendSingle(only, deadline: deadline)
            return
        }
        var pending: [ByteBuffer] = []
        pending.reserveCapacity(buffers.count)
        var total = 0
        for buffer in buffers where !buffer.isEmpty {
            pending.append(buffer)
            total += buffer.readableBytes
        }
        var index = 0
        var sent = 0
        while index < pending.count {
            let epoch = try registration.begin(.write)
            let (count, code) = sendBatch(pending[index...])
            registration.end()
            writeCalls.wrappingAdd(1, ordering: .relaxed)
            if count > 0 {
                sent += count
                var left = count
                while left > 0 {
                    let available = pending[index].readableBytes
                    if left >= available {
                        left -= available
                        index += 1
                    } else {
                        pending[index].moveReaderIndex(forwardBy: left)
                        left = 0
                    }
                }
                continue
            }
            try await handleWriteFailure(code, epoch: epoch, sent: sent, total: total, deadline: deadline)
        }
    }

    private func sendSingle(_ buffer: ByteBuffer, deadline: Deadline) async throws {
        var remaining = buffer
        let total = remaining.readableBytes
        var sent = 0
        while !remaining.isEmpty {
            let epoch = try registration.begin(.write)
            let descriptor = registration.descriptor
            var code: Int32 = 0
            let count = remaining.withUnsafeReadableBytes { raw -> Int in
                let result = send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                if result < 0 { code = errno }
                return result
            }
            registration.end()
            writeCalls.wrappingAdd(1, ordering: .relaxed)
            if count > 0 {
                remaining.moveReaderIndex(forwardBy: count)
                sent += count
                continue
            }
            try await handleWriteFailure(code, epoch: epoch, sent: sent, total: total, deadline: deadline)
        }
    }

    private func handleWriteFailure(_ code: Int32, epoch: UInt64, sent: Int, total: Int, deadline: Deadline) async throws {
        switch code {
        case EAGAIN, EWOULDBLOCK:
            do {
                try await registration.wait(for: .write, seenEpoch: epoch, deadline: deadline)
            } catch var error as TransportError {
                if sent > 0 && (error.kind == .cancelled || error.kind == .timedOut) {
                    close()
                    error.message += " after \(sent) of \(total) bytes; connection closed"
                }
                throw error
            }
        case EINTR:
            return
        default:
            throw TransportError.fromErrno(code, operation: "write", endpoint: endpoint)
        }
    }

    /// One sendmsg over up to 64 buffers, each pinned for the duration of the call.
    private func sendBatch(_ buffers: ArraySlice<ByteBuffer>) -> (Int, Int32) {
        let count = Swift.min(buffers.count, 64)
        let descriptor = registration.descriptor
        let base = buffers.startIndex
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { vectors -> (Int, Int32) in
            func pin(_ position: Int) -> (Int, Int32) {
                if position == count {
                    var header = msghdr()
                    header.msg_iov = vectors.baseAddress
                    header.msg_iovlen = count
                    let result = sendmsg(descriptor, &header, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    return (result, result < 0 ? errno : 0)
                }
                return buffers[base + position].withUnsafeReadableBytes { raw in
                    vectors[position] = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count)
                    return pin(position + 1)
                }
            }
            return pin(0)
        }
    }

    // MARK: - Closing

    /// Closes the connection. Pending and later operations fail with `.closed`. Idempotent.
    /// On a TLS connection a close_notify alert is sent first when no write is in progress.
    public func close() {
        if tlsActive.load(ordering: .acquiring) {
            sendCloseNotify()
        }
        registration.close()
    }

    // MARK: - TLS

    /// Starts TLS on this already connected socket (after PostgreSQL's SSLRequest, or NATS's INFO).
    /// No read or write may be pending. `serverName` is sent as SNI when it is a host name and is
    /// checked against the certificate when the context verifies host names.
    public func startTLS(_ context: TLSContext, serverName: String?, deadline: Deadline = .after(.seconds(10))) async throws {
        guard !tlsActive.load(ordering: .acquiring) else {
            throw TransportError(.tlsConfiguration, endpoint: endpoint, message: "TLS is already active on this connection")
        }
        let session = try context.makeSession(serverName: serverName, endpoint: endpoint)
        tls.withLock { $0 = session }
        while true {
            let step = tls.withLock { session -> TLSStep in
                guard let session else { return .failed(TransportError(.closed, endpoint: endpoint, message: "connection is closed")) }
                return session.handshakeStep(endpoint: endpoint)
            }
            try await flushTLSOutputUnlocked(deadline: deadline)
            switch step {
            case .done:
                tlsActive.store(true, ordering: .releasing)
                return
            case .wantRead:
                do {
                    try await feedCiphertext(deadline: deadline)
                } catch let error as TransportError where error.kind == .endOfStream {
                    throw TransportError(.tlsFailure, endpoint: endpoint, message: "server closed the connection during the TLS handshake")
                }
            case .failed(let error):
                throw error
            }
        }
    }

    /// The tls-server-end-point channel binding data (RFC 5929): the hash of the server's
    /// certificate, with SHA-256 where the signature uses MD5 or SHA-1. Nil without TLS.
    public var tlsServerEndPoint: [UInt8]? {
        tls.withLock { $0?.serverEndPoint }
    }

    /// The ALPN protocol the server selected, if any.
    public var negotiatedApplicationProtocol: String? {
        tls.withLock { $0?.negotiatedApplicationProtocol }
    }

    private func readTLS(into buffer: inout ByteBuffer, maximumBytes: Int, deadline: Deadline, mayWaitInline: Bool) async throws -> Int {
        let limit = Swift.max(1, maximumBytes)
        let minimum = buffer.writableBytes >= Swift.min(limit, 4096) ? 0 : Swift.min(limit, 16384)
        while true {
            let (count, step, hasOutput) = tls.withLock { session -> (Int, TLSStep, Bool) in
                guard let session else { return (0, .failed(registration.closedError()), false) }
                var step = TLSStep.done
                let count = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: minimum) { region in
                    let result = session.read(into: region, limit: limit, endpoint: endpoint)
                    step = result.step
                    return result.count
                }
                return (count, step, session.hasPendingOutput)
            }
            if hasOutput { try await flushTLSOutput(deadline: deadline) }
            if count > 0 { return count }
            switch step {
            case .done:
                throw TransportError(.endOfStream, endpoint: endpoint, message: "TLS session closed by peer")
            case .wantRead:
                try await feedCiphertext(deadline: deadline, mayWaitInline: mayWaitInline)
            case .failed(let error):
                throw error
            }
        }
    }

    private func feedCiphertext(deadline: Deadline, mayWaitInline: Bool = false) async throws {
        var scratch = inboundCiphertext.withLock { buffer -> ByteBuffer in
            let taken = buffer
            buffer = ByteBuffer()
            return taken
        }
        defer {
            scratch.clear()
            inboundCiphertext.withLock { $0 = scratch }
        }
        do {
            _ = try await readPlain(into: &scratch, maximumBytes: 65536, deadline: deadline, mayWaitInline: mayWaitInline)
        } catch let error as TransportError where error.kind == .endOfStream {
            throw TransportError(.endOfStream, endpoint: endpoint, message: "connection closed by peer without a TLS close_notify")
        }
        try tls.withLock { session in
            guard let session else { throw registration.closedError() }
            try session.feed(scratch, endpoint: endpoint)
        }
    }

    private func writeTLS<Buffers: Collection<ByteBuffer>>(_ buffers: Buffers, deadline: Deadline) async throws {
        let chunk = 256 * 1024
        for buffer in buffers {
            var remaining = buffer
            repeat {
                let take = Swift.min(remaining.readableBytes, chunk)
                let piece = remaining.readSlice(count: take) ?? ByteBuffer()
                let output = try tls.withLock { session -> ByteBuffer in
                    guard let session else { throw registration.closedError() }
                    try session.write(piece, endpoint: endpoint)
                    return session.takeOutput()
                }
                if !output.isEmpty { try await sendPlain(CollectionOfOne(output), deadline: deadline) }
            } while !remaining.isEmpty
        }
    }

    /// Sends TLS records that reads or the handshake produced, in order with other writes.
    private func flushTLSOutput(deadline: Deadline) async throws {
        do {
            try await sendLock.lock()
        } catch {
            throw TransportError(.cancelled, endpoint: endpoint, message: "write cancelled")
        }
        defer { sendLock.unlock() }
        try await flushTLSOutputUnlocked(deadline: deadline)
    }

    private func flushTLSOutputUnlocked(deadline: Deadline) async throws {
        let output = tls.withLock { $0?.takeOutput() ?? ByteBuffer() }
        if !output.isEmpty { try await sendPlain(CollectionOfOne(output), deadline: deadline) }
    }

    private func sendCloseNotify() {
        guard sendLock.tryLock() else { return }
        defer { sendLock.unlock() }
        let output = tls.withLock { session -> ByteBuffer in
            guard let session else { return ByteBuffer() }
            session.shutdown()
            return session.takeOutput()
        }
        guard !output.isEmpty, let _ = try? registration.begin(.write) else { return }
        _ = output.withUnsafeReadableBytes { raw in
            send(registration.descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        }
        registration.end()
    }
}

/// When a client's reader may pass `mayWaitInline` to ``Connection/read(into:maximumBytes:deadline:mayWaitInline:)``:
/// with one request in flight, and no waiting caller resumed within the last millisecond — such a
/// caller's task may still be waiting for a thread, about to send its next request, and a thread
/// held in an inline wait would delay it.
public struct InlineWaitGate: Sendable {
    private var lastResume: UInt64 = 0

    public init() {}

    /// Notes that a reply just resumed a waiting caller.
    public mutating func callerResumed() {
        lastResume = MonotonicClock.nanoseconds()
    }

    /// Whether a reader may wait inline while `inFlight` requests are outstanding.
    public func allows(inFlight: Int) -> Bool {
        inFlight == 1 && MonotonicClock.nanoseconds() &- lastResume > 1_000_000
    }
}

extension Endpoint {
    /// The host of a TCP endpoint; nil for a Unix socket.
    public var host: String? {
        if case .tcp(let host, _) = self { return host }
        return nil
    }
}
