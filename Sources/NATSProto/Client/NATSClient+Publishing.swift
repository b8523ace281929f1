import Transport

extension NATSClient {
    /// Publishes `payload` to `subject`. Returns once the message is in the outbound buffer
    /// (waiting only while that buffer is over 1 MiB); ``flush(timeout:)`` confirms delivery to
    /// the server. Throws before sending anything for an invalid subject, a message over the
    /// server's max_payload, or a full reconnect buffer.
    @inlinable
    public func publish<Payload: Collection<UInt8>>(
        _ payload: Payload, to subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil
    ) async throws(NATSError) {
        try await send(payload, to: subject, replyTo: replyTo, headers: headers, promptly: false)
    }

    /// Publishes a buffer's readable bytes.
    public func publish(_ payload: ByteBuffer, to subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil) async throws(NATSError) {
        try await publish(payload.readableBytesView, to: subject, replyTo: replyTo, headers: headers)
    }

    /// Publishes a string's UTF-8 bytes.
    public func publish(_ text: String, to subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil) async throws(NATSError) {
        try await publish(text.utf8, to: subject, replyTo: replyTo, headers: headers)
    }

    /// Answers a request: publishes `payload` to the message's reply subject. A reply is written
    /// at once from the calling task when the writer is idle (latency before batching).
    @inlinable
    public func respond<Payload: Collection<UInt8>>(to request: NATSMessage, with payload: Payload, headers: NATSHeaders? = nil)
        async throws(NATSError)
    {
        guard let replyTo = request.replyTo else {
            throw NATSError(.usage, "the message on \"\(request.subject)\" has no reply subject to respond to")
        }
        try await send(payload, to: replyTo, replyTo: nil, headers: headers, promptly: true)
    }

    /// Answers a request with a buffer's readable bytes.
    public func respond(to request: NATSMessage, with payload: ByteBuffer, headers: NATSHeaders? = nil) async throws(NATSError) {
        try await respond(to: request, with: payload.readableBytesView, headers: headers)
    }

    /// Answers a request with a string's UTF-8 bytes.
    public func respond(to request: NATSMessage, with text: String, headers: NATSHeaders? = nil) async throws(NATSError) {
        try await respond(to: request, with: text.utf8, headers: headers)
    }

    @inlinable
    func send<Payload: Collection<UInt8>>(
        _ payload: Payload, to subject: String, replyTo: String?, headers: NATSHeaders?, promptly: Bool
    ) async throws(NATSError) {
        // The generic part stays here, specialised in the caller; the work is not generic.
        var failure: NATSError?
        var queued = payload.withContiguousStorageIfAvailable { bytes in
            enqueuePublish(UnsafeRawBufferPointer(bytes), subject: subject, replyTo: replyTo, headers: headers, promptly: promptly, failure: &failure)
        }
        if queued == nil, failure == nil {
            queued = Array(payload).withUnsafeBytes { bytes in
                enqueuePublish(bytes, subject: subject, replyTo: replyTo, headers: headers, promptly: promptly, failure: &failure)
            }
        }
        if let failure { throw failure }
        if let queued = queued ?? nil { await complete(queued) }
    }

    /// What a publish left to do once its bytes were queued.
    @usableFromInline
    struct Queued: Sendable {
        let work: WriteWork
        let mustWait: Bool
    }

    /// Appends a PUB (or HPUB) to the outbound buffer; what is left to do, if anything. A
    /// refusal is stored in `failure` (a closure of `withContiguousStorageIfAvailable` cannot
    /// throw a typed error).
    @usableFromInline
    func enqueuePublish(
        _ payload: UnsafeRawBufferPointer, subject: String, replyTo: String?, headers: NATSHeaders?, promptly: Bool,
        failure: inout NATSError?
    ) -> Queued? {
        do throws(NATSError) {
            if let replyTo { try NATSSubject.validate(replyTo, wildcards: false, as: "reply subject") }
            let headerLength = try Self.headerLength(headers)
            return try state.withLock { state throws(NATSError) -> Queued? in
                if subject != state.lastPublishSubject {
                    try NATSSubject.validate(subject, wildcards: false, as: "subject")
                    state.lastPublishSubject = subject
                }
                let action = try state.machine.publish(
                    payload, subject: subject, replyTo: replyTo, headers: headers, headerLength: headerLength, promptly: promptly)
                let mustWait = state.machine.isOverHighWaterMark
                if case .none = action, !mustWait { return nil }
                return Queued(work: state.work(for: action), mustWait: mustWait)
            }
        } catch {
            failure = error
            return nil
        }
    }

    /// The encoded length of a header block (0 for none), refusing what a header cannot carry.
    @usableFromInline
    static func headerLength(_ headers: NATSHeaders?) throws(NATSError) -> Int {
        guard let headers, !headers.isEmpty else { return 0 }
        guard let length = headers.encodedLength() else {
            throw NATSError(.usage, "a header name or value holds characters a header cannot carry")
        }
        return length
    }

    /// Wakes the writer or writes inline, then waits for room if the outbound buffer is full.
    @usableFromInline
    func complete(_ queued: Queued) async {
        await perform(queued.work)
        if queued.mustWait { await waitForRoom() }
    }

    /// Carries out what queueing bytes left to do: wake the writer, or write a batch from the
    /// calling task.
    func perform(_ work: WriteWork) async {
        switch work {
        case .none:
            return
        case .wake(let writer):
            writer.resume(returning: true)
        case .inline(let link, let batch):
            var written: ByteBuffer? = batch
            do {
                try await link.connection.write(batch)
            } catch {
                written = nil
                linkFailed(link, Self.connectionError(error, link.server, doing: "writing"))
            }
            let writer = state.withLock { state -> UnsafeContinuation<Bool, Never>? in
                guard state.machine.inlineWriteFinished(generation: link.generation, written: written.take()) else { return nil }
                return state.writer.take()
            }
            writer?.resume(returning: true)
        }
    }

    func waitForRoom() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if !state.machine.isOverHighWaterMark { return true }
                state.capacityWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
