import Logging
import Synchronization
import Transport

/// One connection to a Redis server: commands from any number of tasks are pipelined — queued
/// bytes go out together in one write while earlier replies are still being read — and replies
/// are matched to callers in order. Pushes (pub/sub messages, invalidations) go to ``pushes``.
public final class RedisConnection: Sendable {
    /// The server's protocol version after the handshake: 3, or 2 when HELLO was refused.
    public let protocolVersion: Int
    /// The database the connection selected at its handshake.
    public let database: Int
    private let pushStream: AsyncStream<RESPValue>

    /// Out-of-band messages from the server, in arrival order. Asking for them keeps the connection
    /// reading while no command is in flight, so pushes arrive without waiting for the next reply.
    public var pushes: AsyncStream<RESPValue> {
        let start = state.withLock { state -> Bool in
            state.readsContinuously = true
            state.sessionChanges.insert(.unrecoverable)
            guard !state.readerActive, !state.hasFailed else { return false }
            state.readerActive = true
            return true
        }
        if start { Task { await self.readInBackground() } }
        return pushStream
    }

    let connection: Connection
    private let state: Mutex<State>
    private let pushContinuation: AsyncStream<RESPValue>.Continuation
    private let commandTimeout: Duration?
    /// The configuration's logger with this connection's endpoint and id as metadata.
    private let logger: Logger
    /// Numbers the process's connections for the logs.
    private static let connectionIDs = Atomic<UInt64>(0)

    /// Where one request stands.
    private enum Slot {
        /// Sent or queued; the caller has not suspended yet.
        case registered
        /// The caller is suspended on this continuation.
        case waiting(UnsafeContinuation<Replies, any Error>)
        /// The replies arrived before the caller suspended.
        case done(Replies)
        /// The request failed before the caller suspended.
        case failed(RedisError)
    }

    private struct State: ~Copyable {
        var router = ReplyRouter()
        var slots = RequestSlots<Slot>()
        var writes = WriteQueue()
        var nextID: UInt64 = 1
        var failure: RedisError?
        /// Whether `failure` is set, read without copying the error.
        var hasFailed: Bool {
            if case .none = failure { return false }
            return true
        }
        /// Whether some task is reading (a caller leading, or the background reader).
        var readerActive = false
        /// The parser and read buffer, parked here while no one reads.
        var reader: ReaderState?
        /// Keep reading with no command in flight (someone listens for pushes).
        var readsContinuously = false
        /// Sees each push first, in stream order (see ``observePushes(_:)``).
        var pushObserver: PushObserver?
        /// Made through the sentinels: a READONLY reply means the server was demoted, and the
        /// connection is closed so that the next one asks the sentinels again.
        var closesOnReadOnly = false
        /// Whether the reader may wait for a reply on its own thread.
        var inlineGate = InlineWaitGate()
        /// What commands left on the session, for a pool's reset.
        var sessionChanges: RedisSessionChanges = []
        /// When the last request was registered (uptime nanoseconds): an idle connection is
        /// checked for a server-side close before it is used again.
        var lastRequestAt: UInt64 = 0
        /// Bytes ever queued for the server, written for certain, and being written now: where
        /// a pipeline's commands stood when the connection failed.
        var queuedBytes = 0
        var writtenBytes = 0
        var writingBytes = 0
        /// For each pipeline in flight, the stream offsets where it starts and where each of its
        /// commands ends.
        var pipelineOffsets: [UInt64: (start: Int, ends: [Int])] = [:]
        /// The per-command outcome of pipelines the failure interrupted, for their callers.
        var interruptedPipelines: [UInt64: RedisPipelineError] = [:]

        /// The outcome of request `id` if it has one (removing it), or nil while it is pending.
        mutating func takeOutcome(_ id: UInt64) -> Result<Replies, RedisError>? {
            switch slots[id] {
            case .done(let replies)?:
                slots[id] = nil
                return .success(replies)
            case .failed(let error)?:
                slots[id] = nil
                return .failure(error)
            case nil:
                return .failure(RedisError(.connection, message: "request was abandoned"))
            case .registered?, .waiting?:
                return nil
            }
        }
    }

    private struct ReaderState: Sendable {
        var parser: RESPParser
        var buffer: ByteBuffer
        /// The values one read brought, routed together under one lock; kept with the reader so
        /// that its capacity outlives a call (a lone command's read would allocate it afresh).
        var batch: [RESPValue] = []
    }

    private init(
        connection: Connection, protocolVersion: Int, commandTimeout: Duration?, database: Int, parser: RESPParser, buffer: ByteBuffer,
        logger: Logger
    ) {
        self.connection = connection
        self.database = database
        self.logger = logger
        self.protocolVersion = protocolVersion
        self.commandTimeout = commandTimeout
        var initial = State()
        initial.reader = ReaderState(parser: parser, buffer: buffer)
        self.state = Mutex(initial)
        (pushStream, pushContinuation) = AsyncStream.makeStream(of: RESPValue.self, bufferingPolicy: .bufferingNewest(10_000))
    }

    /// Connects, authenticates and selects the database. Tries `HELLO 3` (with AUTH and SETNAME)
    /// first and falls back to RESP2's AUTH/SELECT when the server refuses HELLO. With
    /// ``RedisConfiguration/sentinel`` set, the master's address comes from the sentinels.
    public static func connect(_ configuration: RedisConfiguration) async throws -> RedisConnection {
        if let sentinel = configuration.sentinel { return try await connectThroughSentinels(configuration, sentinel) }
        return try await connectDirectly(configuration)
    }

    /// Asks each sentinel in turn for the master's address, connects to it and checks with ROLE
    /// that it is the master (a sentinel may still name a demoted one during a failover).
    private static func connectThroughSentinels(_ configuration: RedisConfiguration, _ sentinel: RedisSentinelConfiguration) async throws
        -> RedisConnection
    {
        var failures: [String] = []
        for address in sentinel.sentinels {
            let answer: RESPValue
            do {
                let connection = try await connectDirectly(sentinel.configuration(for: address, like: configuration))
                defer { connection.close() }
                answer = try await connection.send(["SENTINEL", "get-master-addr-by-name", .string(sentinel.masterName)])
            } catch {
                failures.append("sentinel \(address): \(error)")
                continue
            }
            guard case .array(let parts) = answer.withoutAttributes, parts.count == 2, let host = parts[0].string, let portText = parts[1].string,
                let port = Int(portText), (1...65535).contains(port)
            else {
                failures.append("sentinel \(address) knows no master \"\(SafeText.escaped(sentinel.masterName))\"")
                continue
            }
            var master = configuration
            master.sentinel = nil
            master.host = host
            master.port = port
            let connection: RedisConnection
            do {
                connection = try await connectDirectly(master)
            } catch {
                failures.append("master \(host):\(port) from sentinel \(address): \(error)")
                continue
            }
            let role = try? await connection.send(["ROLE"])
            guard case .array(let fields)? = role?.withoutAttributes, fields.first?.string == "master" else {
                connection.close()
                failures.append("\(host):\(port) from sentinel \(address) is not a master (\(role.flatMap { $0.withoutAttributes.arrayFirstString } ?? "no ROLE"))")
                continue
            }
            connection.state.withLock { $0.closesOnReadOnly = true }
            connection.logger.info("connected through the sentinels", metadata: ["master": "\(sentinel.masterName)", "address": "\(host):\(port)"])
            return connection
        }
        throw RedisError(
            .connection, message: "no master \"\(SafeText.escaped(sentinel.masterName))\" through the sentinels: " + failures.joined(separator: "; "))
    }

    private static func connectDirectly(_ configuration: RedisConfiguration) async throws -> RedisConnection {
        var logger = configuration.logger
        logger[metadataKey: "redis.endpoint"] = "\(Endpoint.tcp(host: configuration.host, port: configuration.port))"
        logger[metadataKey: "redis.connection"] = "\(connectionIDs.add(1, ordering: .relaxed).newValue)"
        logger.debug("connecting", metadata: ["tls": "\(configuration.tls != nil)"])
        let transport: Connection
        do {
            transport = try await Connection.connect(
                to: .tcp(host: configuration.host, port: configuration.port),
                options: ConnectOptions(
                    timeout: configuration.connectTimeout, tls: configuration.tls, serverName: configuration.host,
                    inlineReadWait: configuration.inlineReadWait))
        } catch {
            logger.warning("could not connect", metadata: ["error": "\(error)"])
            throw RedisError(.connection, message: "could not connect to Redis: \(error)")
        }
        var hello: [RESPArgument] = ["HELLO", "3"]
        if let password = configuration.password {
            hello += ["AUTH", .string(configuration.user ?? "default"), .string(password)]
        }
        if let name = configuration.clientName { hello += ["SETNAME", .string(name)] }

        // The handshake runs before the read loop exists: write, then read its replies directly.
        var parser = RESPParser(limits: configuration.limits)
        var buffer = ByteBuffer(capacity: 4096)
        let deadline = Deadline.after(configuration.connectTimeout)
        func roundTrip(_ command: [RESPArgument]) async throws -> RESPValue {
            var out = ByteBuffer()
            RESPCommandEncoder.encode(command, into: &out)
            try await transport.write(out, deadline: deadline)
            while true {
                if let value = try parser.next(&buffer) {
                    if case .push = value { continue }
                    return value
                }
                try await transport.read(into: &buffer, deadline: deadline)
            }
        }
        var version = 3
        do {
            let reply = try await roundTrip(hello)
            if reply.isError {
                let error = RedisError.server(reply.string ?? "")
                // NOAUTH/WRONGPASS/NOPERM are real refusals; an unknown HELLO means an old server.
                if ["WRONGPASS", "NOAUTH", "NOPERM"].contains(error.code) {
                    throw error
                }
                logger.debug("HELLO 3 refused; falling back to RESP2", metadata: ["reply": "\(error.code)"])
                version = 2
                if let password = configuration.password {
                    var auth: [RESPArgument] = ["AUTH"]
                    if let user = configuration.user { auth.append(.string(user)) }
                    auth.append(.string(password))
                    let authReply = try await roundTrip(auth)
                    if authReply.isError { throw RedisError.server(authReply.string ?? "") }
                }
                if let name = configuration.clientName {
                    let nameReply = try await roundTrip(["CLIENT", "SETNAME", .string(name)])
                    if nameReply.isError { throw RedisError.server(nameReply.string ?? "") }
                }
            }
            if configuration.database != 0 {
                let selectReply = try await roundTrip(["SELECT", .integer(Int64(configuration.database))])
                if selectReply.isError { throw RedisError.server(selectReply.string ?? "") }
            }
            // Library identification where the server has CLIENT SETINFO (7.2+; older ones refuse
            // it), and a PING in the same write: a server still loading its data set takes the
            // handshake but answers data commands with -LOADING, so the connection waits that out
            // here, within the connect deadline, as redis-py's retry does.
            var out = ByteBuffer()
            RESPCommandEncoder.encode(["CLIENT", "SETINFO", "LIB-NAME", "transcription-infra"], into: &out)
            RESPCommandEncoder.encode(["PING"], into: &out)
            try await transport.write(out, deadline: deadline)
            func nextReply() async throws -> RESPValue {
                while true {
                    if let value = try parser.next(&buffer) {
                        if case .push = value { continue }
                        return value
                    }
                    try await transport.read(into: &buffer, deadline: deadline)
                }
            }
            _ = try await nextReply()
            var ping = try await nextReply()
            var pause = Duration.milliseconds(20)
            let started = ContinuousClock.now
            while ping.isError, RedisError.server(ping.string ?? "").code == "LOADING" {
                guard Deadline.after(pause) < deadline else {
                    throw RedisError(
                        .connection,
                        message: "the server was still loading its data set when the connect timeout (\(configuration.connectTimeout)) passed")
                }
                if pause == .milliseconds(20) { logger.info("the server is loading its data set; waiting") }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(500))
                ping = try await roundTrip(["PING"])
            }
            if ping.isError { throw RedisError.server(ping.string ?? "") }
            if pause > .milliseconds(20) {
                logger.info("the server finished loading", metadata: ["waited": "\(ContinuousClock.now - started)"])
            }
        } catch {
            transport.close()
            let failure: RedisError
            switch error {
            case let error as RedisError: failure = error
            case let error as RESPProtocolError: failure = RedisError(.protocolViolation, message: "\(error)")
            default: failure = RedisError(.connection, message: "handshake failed: \(error)")
            }
            logger.warning("handshake failed", metadata: ["error": "\(failure)"])
            throw failure
        }
        logger.info(
            "connected",
            metadata: ["protocol": "RESP\(version)", "tls": "\(transport.isTLS)", "authenticated": "\(configuration.password != nil)"])
        return RedisConnection(
            connection: transport, protocolVersion: version, commandTimeout: configuration.commandTimeout, database: configuration.database,
            parser: parser, buffer: buffer, logger: logger)
    }

    /// Whether the connection has failed or was closed.
    public var isClosed: Bool { state.withLock { $0.hasFailed } }

    /// What a push observer is told: a push, in stream order, or that the connection ended.
    enum PushEvent: Sendable {
        case push(RESPValue)
        case closed
    }

    /// Sees each push as the reader routes it, before any reply that came after it reaches its
    /// caller; returns true when it took the push (it then does not go to ``pushes``). Called
    /// once with `.closed` when the connection fails or is closed.
    typealias PushObserver = @Sendable (PushEvent) -> Bool

    /// Installs `observer` and keeps the connection reading while no command is in flight, so
    /// that pushes (client-side caching's invalidations) are seen as soon as they come. Install
    /// it before the command that makes the server send them. On a connection that has already
    /// failed, the observer is told `.closed` at once.
    func observePushes(_ observer: @escaping PushObserver) {
        let (start, failed) = state.withLock { state -> (Bool, Bool) in
            if state.hasFailed { return (false, true) }
            state.pushObserver = observer
            state.readsContinuously = true
            state.sessionChanges.insert(.unrecoverable)
            guard !state.readerActive else { return (false, false) }
            state.readerActive = true
            return (true, false)
        }
        if failed { _ = observer(.closed) }
        if start { Task { await self.readInBackground() } }
    }

    /// Sends one command and returns its reply. An error reply throws ``RedisError`` with the
    /// server's code. Pub/sub commands belong to ``RedisSubscriber``, not here.
    @discardableResult
    public func send(_ arguments: [RESPArgument], timeout: Duration? = nil) async throws -> RESPValue {
        if case .string(let name)? = arguments.first, Self.changesMode(name) {
            throw RedisError(.usage, message: "\(name) changes the connection's mode; use a dedicated subscriber connection")
        }
        let replies = try await submit(replies: 1, timeout: timeout ?? commandTimeout) { outbound, changes in
            changes.record(arguments)
            RESPCommandEncoder.encode(arguments, into: &outbound)
        }
        let reply = replies.first
        if reply.isError {
            let error = RedisError.server(reply.string ?? "")
            if error.code == "READONLY", state.withLock({ $0.closesOnReadOnly }) {
                logger.warning("the master was demoted (READONLY); closing, the next connection asks the sentinels again")
                connection.close()
                fail(RedisError(.connection, message: "the server became a replica (READONLY); reconnect through the sentinels"))
            }
            throw error
        }
        return reply
    }

    /// Sends several commands in one write and returns every reply in order; an error reply is
    /// returned as a value and affects only its own command. When the connection fails midway,
    /// throws ``RedisPipelineError`` with each command's outcome: answered (with its reply),
    /// unknown (sent, no reply: it may have run) or not sent.
    public func pipeline(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        return try await submitPipeline(commands, keepingOnlyErrors: false, timeout: timeout).array
    }

    /// Sends a pipeline's commands in one write, noting where each ends, and waits for its
    /// replies. When the connection fails midway, throws what became of each command.
    private func submitPipeline(_ commands: [[RESPArgument]], keepingOnlyErrors: Bool, timeout: Duration?) async throws -> Replies {
        var id: UInt64 = 0
        do {
            return try await submit(
                replies: commands.count, keepingOnlyErrors: keepingOnlyErrors, timeout: timeout ?? commandTimeout, registered: { id = $0 }
            ) { outbound, changes, ends in
                // Read in place: iterating would copy each command, retaining its array.
                ends.reserveCapacity(commands.count)
                commands.withUnsafeBufferPointer { commands in
                    for index in commands.indices {
                        commands[index].withUnsafeBufferPointer { command in
                            changes.record(command)
                            RESPCommandEncoder.encode(command, into: &outbound)
                        }
                        ends.append(outbound.readableBytes)
                    }
                }
            }
        } catch let error as RedisError {
            if let interrupted = state.withLock({ $0.interruptedPipelines.removeValue(forKey: id) }) { throw interrupted }
            throw error
        }
    }

    /// Sends several commands in one write, as ``pipeline(_:timeout:)`` does, for callers that
    /// need no reply but the errors (bulk writes): the replies are checked and counted as they
    /// are read, and a simple string or integer reply is never built. Returns each error reply
    /// with the index of its command (empty when every command succeeded). When the connection
    /// fails midway, throws ``RedisPipelineError``, where a command answered with something
    /// other than an error is ``RedisPipelineError/Outcome/answeredAndDiscarded``.
    public func pipelineDiscardingReplies(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws -> [(index: Int, error: RedisError)] {
        guard !commands.isEmpty else { return [] }
        let kept = try await submitPipeline(commands, keepingOnlyErrors: true, timeout: timeout).array
        return ReplyRouter.indexedErrors(kept).map { ($0.index, RedisError.server($0.error.string ?? "")) }
    }

    /// Sends a command whose answer comes as pushes (SUBSCRIBE and its family on RESP3): nothing
    /// waits for a reply in order.
    func sendForPushes(_ arguments: [RESPArgument]) async throws {
        guard protocolVersion == 3 else {
            throw RedisError(.usage, message: "pub/sub on a shared connection needs RESP3; the server answered HELLO 3 with an error")
        }
        var encoded = ByteBuffer()
        RESPCommandEncoder.encode(arguments, into: &encoded)
        let mustFlush = try state.withLock { state throws(RedisError) -> Bool in
            if let failure = state.failure { throw failure }
            state.sessionChanges.insert(.unrecoverable)
            state.writes.pending.writeBuffer(encoded)
            state.queuedBytes += encoded.readableBytes
            return state.writes.claimFlush()
        }
        if mustFlush { await flush() }
    }

    /// Whether `name` is a command that changes the connection's mode (the subscription family,
    /// MONITOR), in any letter case. Compared byte by byte, with no copy: every command pays it.
    static func changesMode(_ name: String) -> Bool {
        func matches(_ bytes: some Collection<UInt8>) -> Bool {
            modeChangingCommands.contains { command in
                // `& 0xDF` upper-cases an ASCII letter; the names are all letters.
                command.count == bytes.count && zip(command, bytes).allSatisfy { $0 == $1 & 0xDF }
            }
        }
        return name.utf8.withContiguousStorageIfAvailable(matches) ?? matches(Array(name.utf8))
    }

    private static let modeChangingCommands: [[UInt8]] = ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR"]
        .map { Array($0.utf8) }

    /// For a connection nobody is using: whether it is closed, or the server closed it or sent
    /// something unasked. One `poll`, no waiting (a pool asks before handing the connection out).
    /// A connection that reads continuously for pushes is not idle in this sense.
    public var isBrokenWhileIdle: Bool {
        let (failed, reading) = state.withLock { ($0.hasFailed, $0.readsContinuously) }
        return failed || (!reading && connection.hasUnexpectedInput)
    }

    /// For a connection about to be used again: when nothing has been asked on it for `idle`
    /// (and nothing is in flight), whether the server closed it meanwhile (a restart, an idle
    /// timeout) or sent something unasked — then it is closed here, so the caller takes a new one
    /// instead of sending a command that would be lost. One `poll` without waiting, and only
    /// after an idle spell: busy connections never pay for it.
    public func closeIfDeadAfterIdle(_ idle: Duration = .milliseconds(50)) -> Bool {
        let threshold = UInt64(idle.components.seconds) * 1_000_000_000 + UInt64(idle.components.attoseconds / 1_000_000_000)
        let check = state.withLock { state -> Bool? in
            if state.hasFailed { return nil }
            guard state.slots.isEmpty, !state.readerActive, !state.readsContinuously else { return false }
            return Deadline.now.uptimeNanoseconds &- state.lastRequestAt >= threshold
        }
        switch check {
        case nil: return true
        case false?: return false
        case true?:
            guard connection.hasUnexpectedInput else { return false }
            connection.close()
            fail(RedisError(.connection, message: "the server closed the idle connection"))
            return true
        }
    }

    /// What commands have left on the session since it was last reset.
    public var sessionChanges: RedisSessionChanges { state.withLock { $0.sessionChanges } }

    /// Makes the connection fit for its next user: an open `MULTI` is discarded, `WATCH`es and
    /// client tracking are dropped and the configured database is selected again, in one round
    /// trip and only when needed. False when it cannot be proven clean (pushes were asked for,
    /// a mode was changed that has no undo, the reset failed, or the connection is closed).
    public func prepareForReuse() async -> Bool {
        let changes = state.withLock { !$0.hasFailed ? $0.sessionChanges : [.unrecoverable] }
        if changes.contains(.unrecoverable) { return false }
        guard !changes.isEmpty else { return true }
        var commands: [[RESPArgument]] = []
        if changes.contains(.transaction) { commands.append([.string("DISCARD")]) }
        if changes.contains(.watching), !changes.contains(.transaction) { commands.append([.string("UNWATCH")]) }
        if changes.contains(.clientSettings) { commands.append([.string("CLIENT"), .string("TRACKING"), .string("OFF")]) }
        if changes.contains(.database) { commands.append([.string("SELECT"), .string(String(database))]) }
        do {
            let replies = try await pipeline(commands)
            guard !replies.contains(where: \.isError) else { return false }
        } catch {
            return false
        }
        state.withLock { $0.sessionChanges = [] }
        return true
    }

    /// Proves the connection alive with a PING.
    public func ping(timeout: Duration = .seconds(5)) async -> Bool {
        guard !isClosed else { return false }
        return (try? await send(["PING"], timeout: timeout)) != nil
    }

    /// Closes the connection; waiting callers fail with a connection error.
    public func close() {
        connection.close()
        fail(RedisError(.connection, message: Self.closedByCaller))
    }

    /// The message of the error that callers see after ``close()``.
    static let closedByCaller = "connection closed"

    // MARK: - Driver

    /// Registers a request, has `encode` write its commands straight into the outbound buffer
    /// (no intermediate copy), sends, and waits for its replies.
    private func submit(
        replies: Int, timeout: Duration?, encode: (inout ByteBuffer, inout RedisSessionChanges) -> Void
    ) async throws -> Replies {
        try await submit(replies: replies, timeout: timeout, registered: nil) { outbound, changes, _ in encode(&outbound, &changes) }
    }

    /// `registered` learns the request's id; `encode` may note where each command ends in the
    /// outbound buffer (pipelines do), which tells what was sent if the connection fails.
    private func submit(
        replies: Int, keepingOnlyErrors: Bool = false, timeout: Duration?, registered: ((UInt64) -> Void)?,
        encode: (inout ByteBuffer, inout RedisSessionChanges, inout [Int]) -> Void
    ) async throws -> Replies {
        // Register first, so that a reply can never arrive before its slot exists.
        let mayTakeFastPath = !keepingOnlyErrors && !connection.isTLS
        let now = Deadline.now  // one clock read for the idle check's record and the deadline
        // `alone`: the queued bytes (this caller's own) when it writes and reads by itself.
        var (id, mustFlush, alone) = try state.withLock { state throws(RedisError) -> (UInt64, Bool, ByteBuffer?) in
            if let failure = state.failure { throw failure }
            let id = state.nextID
            state.nextID &+= 1
            state.router.enqueue(id, replies: replies, keepingOnlyErrors: keepingOnlyErrors)
            state.slots[id] = .registered
            state.lastRequestAt = now.uptimeNanoseconds
            let before = state.writes.pending.readableBytes
            let start = state.queuedBytes
            var ends: [Int] = []
            encode(&state.writes.pending, &state.sessionChanges, &ends)
            state.queuedBytes += state.writes.pending.readableBytes - before
            if !ends.isEmpty { state.pipelineOffsets[id] = (start, ends.map { start + $0 - before }) }
            let mustFlush = state.writes.claimFlush()
            // Alone on the connection (nothing else in flight, no one writing or reading): this
            // caller writes and reads itself, leading both ways at once.
            guard mayTakeFastPath, mustFlush, !state.readerActive, !state.readsContinuously, state.router.pendingCount == 1,
                state.reader != nil
            else { return (id, mustFlush, nil) }
            state.readerActive = true
            let batch = state.writes.takePending()
            state.writingBytes = batch.readableBytes
            return (id, true, batch)
        }
        registered?(id)
        defer {
            if registered != nil { state.withLock { _ = $0.pipelineOffsets.removeValue(forKey: id) } }
        }
        let deadline = timeout.map { now.advanced(by: $0) } ?? .never
        if var batch = alone.take() {
            if let outcome = await runFastPath(&batch, for: id, deadline: deadline) {
                return try outcome.get()
            }
            // Nothing lost: the reply is still to come and this caller still leads the reading.
            if let outcome = await readAsLeader(until: id, deadline: deadline) { return try outcome.get() }
            return try await waitAsFollower(id, timeout: nil)
        }
        // The caller that finds no write in progress writes everything queued (its own and later
        // callers' commands) in as few writes as the socket allows.
        if mustFlush { await flush() }
        // Leader/follower reading: the caller that finds no one reading reads itself, routing every
        // reply (its own included) until its own has come, then hands reading on. This saves the
        // hop through a separate reader task on the common, sequential path.
        let leads = state.withLock { state -> Bool in
            guard !state.readerActive, !state.hasFailed, case .registered? = state.slots[id] else { return false }
            state.readerActive = true
            return true
        }
        if leads {
            let outcome = await readAsLeader(until: id, deadline: deadline)
            if let outcome { return try outcome.get() }
        }
        return try await waitAsFollower(id, timeout: leads ? nil : timeout)
    }

    /// Waits for request `id`'s outcome while another task reads; `timeout` gives up on it.
    private func waitAsFollower(_ id: UInt64, timeout: Duration?) async throws -> Replies {
        let timer: Task<Void, Never>? = timeout.map { duration in
            Task { [weak self] in
                try? await Task.sleep(for: duration)
                guard !Task.isCancelled else { return }
                self?.giveUp(id, RedisError(.timedOut, message: "no reply within \(duration)"))
            }
        }
        defer { timer?.cancel() }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Replies, any Error>) in
                let ready = state.withLock { state -> Result<Replies, RedisError>? in
                    if let outcome = state.takeOutcome(id) { return outcome }
                    if Task.isCancelled {
                        state.slots[id] = nil
                        state.router.abandon(id)
                        return .failure(RedisError(.cancelled, message: "cancelled; the reply will be discarded"))
                    }
                    state.slots[id] = .waiting(continuation)
                    return nil
                }
                if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
            }
        } onCancel: {
            self.giveUp(id, RedisError(.cancelled, message: "cancelled; the reply will be discarded"))
        }
    }

    /// The lone caller's path: sends its bytes and reads its reply on its own thread, with no
    /// suspension when the socket takes the bytes at once and the reply comes within the inline
    /// wait (the common sequential case: one lock to register, one after the write, one to route
    /// and hand reading back). Returns the outcome, or nil when the reply has not come whole:
    /// then the reader is parked again and the caller still leads the reading. `batch` is left
    /// empty (the written buffer becomes the queue's spare).
    private func runFastPath(_ batch: inout ByteBuffer, for id: UInt64, deadline: Deadline) async -> Result<Replies, any Error>? {
        var taken: ReaderState?
        var waitsInline = false
        do {
            let sent = try connection.sendNow(batch)
            if sent < batch.readableBytes {
                batch.moveReaderIndex(forwardBy: sent)
                try await connection.write(batch)
            }
            let more = state.withLock { state -> Bool in
                state.writtenBytes += state.writingBytes
                state.writingBytes = 0
                state.writes.recycle(batch)
                batch = ByteBuffer()
                guard !state.writes.pending.isEmpty, !state.hasFailed else {
                    _ = state.writes.nextBatch(stop: true)  // ends the flush
                    taken = state.reader.take()
                    // Still alone? Others may have registered during the write.
                    waitsInline = state.inlineGate.allows(inFlight: state.router.pendingCount)
                    return false
                }
                return true
            }
            // Callers that queued meanwhile count on this one to write their commands.
            if more { await flush() }
        } catch {
            fail(RedisError(.connection, message: "write failed: \(error)"))
        }
        // Taken (moved out, so its buffers stay uniquely referenced) only when nothing failed and
        // no flush for others intervened; otherwise the async read loop goes on from here.
        guard var reader = taken.take() else { return nil }
        do {
            if try connection.readNow(into: &reader.buffer, deadline: deadline, waitingInline: waitsInline) > 0 {
                do {
                    while let value = try reader.parser.next(&reader.buffer) { reader.batch.append(value) }
                } catch {
                    route(&reader.batch)  // what came before the bad bytes still reaches its callers
                    throw error
                }
                route(&reader.batch)
                reader.buffer.compact()
            }
        } catch let error as RESPProtocolError {
            connection.close()
            fail(RedisError(.protocolViolation, message: "\(error)"))
        } catch {
            fail(RedisError(.connection, message: "connection lost: \(error)"))
        }
        var parked: ReaderState? = consume reader
        let (outcome, restart) = state.withLock { state -> (Result<Replies, RedisError>?, Bool) in
            swap(&state.reader, &parked)
            // Not answered yet: the caller goes on leading (`readerActive` stays set).
            guard let outcome = state.takeOutcome(id) else { return (nil, false) }
            guard !state.hasFailed, state.router.pendingCount > 0 || state.readsContinuously else {
                state.readerActive = false
                return (outcome, false)
            }
            return (outcome, true)  // others are waiting: the background reader takes over
        }
        if restart { Task { await self.readInBackground() } }
        return outcome.map { $0.mapError { $0 as any Error } }
    }

    /// Ends a request early with `error`; its replies are dropped when they come.
    private func giveUp(_ id: UInt64, _ error: RedisError) {
        let continuation = state.withLock { state -> UnsafeContinuation<Replies, any Error>? in
            guard let slot = state.slots[id] else { return nil }
            switch slot {
            case .waiting(let continuation):
                state.slots[id] = nil
                state.router.abandon(id)
                return continuation
            case .registered:
                state.slots[id] = .failed(error)
                state.router.abandon(id)
                return nil
            case .done, .failed:
                return nil
            }
        }
        continuation?.resume(throwing: error)
    }

    /// Writes everything queued, again and again, until the queue stays empty.
    private func flush() async {
        do {
            try await connection.writeQueued(
                take: {
                    state.withLock { state in
                        let batch = state.writes.nextBatch(stop: state.hasFailed)
                        state.writingBytes = batch?.readableBytes ?? 0
                        return batch
                    }
                },
                giveBack: { batch in
                    state.withLock { state in
                        state.writtenBytes += state.writingBytes
                        state.writingBytes = 0
                        state.writes.recycle(batch)
                    }
                })
        } catch {
            fail(RedisError(.connection, message: "write failed: \(error)"))
        }
    }

    /// Reads as the leader until request `id` is answered (or fails). Returns its outcome, or nil
    /// when the caller should wait as a follower instead (its read was cancelled). Always hands
    /// reading on before returning.
    private func readAsLeader(until id: UInt64, deadline: Deadline) async -> Result<Replies, any Error>? {
        let stopped = await read(deadline: deadline, asCaller: true) { state in
            if case .registered? = state.slots[id] { return false }
            return true
        }
        return state.withLock { state -> Result<Replies, any Error>? in
            if let outcome = state.takeOutcome(id) { return outcome.mapError { $0 as any Error } }
            // Our read stopped early: a deadline, a cancellation or a failure.
            state.slots[id] = nil
            state.router.abandon(id)
            return .failure(state.failure ?? stopped ?? RedisError(.connection, message: "read stopped"))
        }
    }

    /// Reads in a task of its own while commands are in flight or pushes are listened for.
    private func readInBackground() async {
        _ = await read(deadline: .never, asCaller: false) { state in
            state.router.pendingCount == 0 && !state.readsContinuously
        }
    }

    /// The read loop, run by whoever holds `readerActive` (`asCaller`: a caller reading for its own
    /// request): routes every value read until `isDone` holds (checked between reads), then parks
    /// the parser and buffer and, if someone still needs replies, starts the background reader.
    /// Returns the error that stopped it early, if any.
    private func read(deadline: Deadline, asCaller: Bool, until isDone: (inout State) -> Bool) async -> RedisError? {
        guard
            var (reader, skippable) = state.withLock({ state -> (ReaderState, Int)? in
                defer { state.reader = nil }
                return state.reader.map { ($0, state.router.skippableReplies) }
            })
        else { return RedisError(.connection, message: "no reader state") }
        var stoppedBy: RedisError?
        // The values one read brought, routed together under one lock (the reader's array, so its
        // capacity is reused: `route` empties it keeping capacity).
        var batch: [RESPValue] = []
        swap(&batch, &reader.batch)
        // Replies of a request that keeps only errors, skipped unbuilt since the last routing.
        var skipped = 0
        while true {
            do {
                do {
                    while true {
                        if skippable > 0, reader.parser.skipSimpleReply(&reader.buffer) {
                            if !batch.isEmpty { route(&batch) }  // stream order: earlier values first
                            skipped += 1
                            skippable -= 1
                            if skippable == 0 {
                                // The request is complete: the next one may be skippable too.
                                skippable = route(&batch, thenSkipped: skipped)
                                skipped = 0
                            }
                            continue
                        }
                        guard let value = try reader.parser.next(&reader.buffer) else { break }
                        if skipped > 0 {
                            route(&batch, thenSkipped: skipped)
                            skipped = 0
                        }
                        if skippable > 0, !value.isPush { skippable -= 1 }
                        batch.append(value)
                    }
                } catch {
                    route(&batch, thenSkipped: skipped)  // what came before the bad bytes still reaches its callers
                    skipped = 0
                    throw error
                }
                route(&batch, thenSkipped: skipped)
                skipped = 0
                reader.buffer.compact()
                let (done, alone, next) = state.withLock { state -> (Bool, Bool, Int) in
                    // Whether to wait inline (it reads the clock) only matters when reading on.
                    if isDone(&state) || state.hasFailed { return (true, false, 0) }
                    return (false, asCaller && state.inlineGate.allows(inFlight: state.router.pendingCount), state.router.skippableReplies)
                }
                skippable = next
                if done { break }
                // A caller reading for its own lone request would only wait: its thread may wait
                // for the reply (see `InlineWaitGate`).
                try await connection.read(into: &reader.buffer, deadline: deadline, mayWaitInline: asCaller && alone)
            } catch let error as RESPProtocolError {
                connection.close()
                fail(RedisError(.protocolViolation, message: "\(error)"))
                break
            } catch let error as TransportError where error.kind == .timedOut || error.kind == .cancelled {
                stoppedBy = RedisError(error.kind == .timedOut ? .timedOut : .cancelled, message: error.kind == .timedOut ? "no reply in time" : "cancelled; the reply will be discarded")
                break
            } catch {
                fail(RedisError(.connection, message: "connection lost: \(error)"))
                break
            }
        }
        batch.removeAll(keepingCapacity: true)
        swap(&batch, &reader.batch)
        let parked = reader
        let restart = state.withLock { state -> Bool in
            state.reader = parked
            guard !state.hasFailed, state.router.pendingCount > 0 || state.readsContinuously else {
                state.readerActive = false
                return false
            }
            return true  // stays active: the background reader takes over
        }
        if restart { Task { await self.readInBackground() } }
        return stoppedBy
    }

    /// What routing a batch leaves to do after the lock, in the order the values came.
    private enum Delivery {
        case resume(UnsafeContinuation<Replies, any Error>, Replies)
        case push(RESPValue)
    }

    /// Routes the values one read brought (and empties `values`, keeping its capacity): every
    /// value is matched to its request under one lock; callers are resumed and pushes delivered
    /// after it, in stream order. The first delivery is kept apart, so a lone reply costs no
    /// array.
    ///
    /// `thenSkipped`: after the values, that many replies were skipped unbuilt (they belong to a
    /// request that keeps only errors).
    /// Returns how many of the next replies may be skipped (see `ReplyRouter.skippableReplies`).
    @discardableResult
    private func route(_ values: inout [RESPValue], thenSkipped skipped: Int = 0) -> Int {
        guard !values.isEmpty || skipped > 0 else { return 0 }
        var skippable = 0
        var first: Delivery?
        var rest: [Delivery] = []
        var unsolicited: RESPValue?
        var observer: PushObserver?
        state.withLock { state in
            func deliver(_ delivery: Delivery) {
                if first == nil { first = delivery } else { rest.append(delivery) }
            }
            func complete(_ id: UInt64, _ replies: Replies) {
                switch state.slots[id] {
                case .waiting(let continuation)?:
                    state.slots[id] = nil
                    state.inlineGate.callerResumed()
                    deliver(.resume(continuation, replies))
                case .registered?:
                    state.slots[id] = .done(replies)
                default:
                    break
                }
            }
            // Each value is moved out of the batch (a trivial `.null` takes its place), so routing
            // it costs no reference counting: a copy of a value holding slices of the read buffer
            // would retain and later release that buffer's storage once per reply.
            values.withUnsafeMutableBufferPointer { slots in
                guard let base = slots.baseAddress else { return }
                routing: for index in 0..<slots.count {
                    let value = (base + index).move()
                    (base + index).initialize(to: .null)
                    switch state.router.received(value) {
                    case .complete(let id, let replies):
                        complete(id, replies)
                    case .push(let push):
                        observer = state.pushObserver
                        deliver(.push(push))
                    case .unsolicited(let reply):
                        unsolicited = reply
                        break routing
                    case .waitForMore, .dropped:
                        break
                    }
                }
            }
            if unsolicited == nil, case .complete(let id, let replies) = state.router.skipped(skipped) { complete(id, replies) }
            skippable = state.router.skippableReplies
        }
        values.removeAll(keepingCapacity: true)
        func perform(_ delivery: Delivery) {
            switch delivery {
            case .resume(let continuation, let replies): continuation.resume(returning: replies)
            case .push(let push):
                if let observer, observer(.push(push)) { return }
                pushContinuation.yield(push)
            }
        }
        if let first { perform(first) }
        for delivery in rest { perform(delivery) }
        if let unsolicited {
            connection.close()
            fail(RedisError(.protocolViolation, message: "reply with no command waiting: \(unsolicited)"))
            return 0
        }
        return skippable
    }

    private func fail(_ error: RedisError) {
        let (continuations, first, observer) = state.withLock { state -> ([UnsafeContinuation<Replies, any Error>], Bool, PushObserver?) in
            let first = !state.hasFailed
            if first { state.failure = error }
            let observer = state.pushObserver
            state.pushObserver = nil
            // A pipeline cut midway learns, command by command, what was answered, what may
            // have run and what was never sent.
            let sentEnd = state.writtenBytes + state.writingBytes
            for received in state.router.failAllWithReplies() {
                guard let offsets = state.pipelineOffsets.removeValue(forKey: received.id) else { continue }
                let replies = received.replies
                var errors: [Int: RESPValue] = [:]
                if received.keepsOnlyErrors {
                    for (index, error) in ReplyRouter.indexedErrors(replies) { errors[index] = error }
                }
                var outcomes: [RedisPipelineError.Outcome] = []
                outcomes.reserveCapacity(offsets.ends.count)
                for index in offsets.ends.indices {
                    let start = index == 0 ? offsets.start : offsets.ends[index - 1]
                    if received.keepsOnlyErrors, index < received.answered {
                        outcomes.append(errors[index].map { .answered($0) } ?? .answeredAndDiscarded)
                    } else if !received.keepsOnlyErrors, index < replies.count {
                        outcomes.append(.answered(replies[index]))
                    } else if start >= sentEnd {
                        outcomes.append(.notSent)
                    } else {
                        outcomes.append(.unknown)
                    }
                }
                state.interruptedPipelines[received.id] = RedisPipelineError(outcomes: outcomes, cause: error)
            }
            var waiting: [UnsafeContinuation<Replies, any Error>] = []
            state.slots.updateEach { _, slot in
                switch slot {
                case .waiting(let continuation)?:
                    waiting.append(continuation)
                    slot = nil
                case .registered?:
                    slot = .failed(error)
                case .done?, .failed?, nil:
                    break
                }
            }
            return (waiting, first, observer)
        }
        _ = observer?(.closed)
        if first {
            switch error.kind {
            case .protocolViolation: logger.error("protocol violation; connection closed", metadata: ["error": "\(error)"])
            case .connection where error.message == Self.closedByCaller: logger.debug("connection closed")
            default: logger.warning("connection lost", metadata: ["error": "\(error)"])
            }
        }
        for continuation in continuations { continuation.resume(throwing: error) }
        pushContinuation.finish()
    }
}

