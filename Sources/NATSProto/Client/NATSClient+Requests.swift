import Transport

extension NATSClient {
    /// Sends a request and waits for the first reply, over the client's one inbox subscription
    /// (`_INBOX.<nuid>.*`, made on first use). Throws ``NATSError/Kind/noResponders`` when no
    /// one subscribes to `subject` and ``NATSError/Kind/timedOut`` when no reply comes in time.
    /// A request written to a connection that then breaks fails at once with
    /// ``NATSError/Kind/interrupted`` (it may have been processed; see
    /// ``NATSConfiguration/failInterruptedRequests``); one still buffered is sent after the
    /// reconnect.
    public func request<Payload: Collection<UInt8>>(
        _ payload: Payload, subject: String, headers: NATSHeaders? = nil, timeout: Duration = .seconds(5)
    ) async throws(NATSError) -> NATSMessage {
        try NATSSubject.validate(subject, wildcards: false, as: "subject")
        let headerLength = try Self.headerLength(headers)
        let token = requestTokens.wrappingAdd(1, ordering: .relaxed).newValue
        let deadline = Deadline.after(timeout)
        // Queue the PUB with a slot for the reply; write it (inline when the writer is idle);
        // then wait, unless the reply or an error already filled the slot.
        // A lone request (none other in flight) may read its reply on its own thread.
        func enqueue(_ bytes: UnsafeRawBufferPointer) -> Result<(WriteWork, InputReader?), NATSError> {
            state.withLock { state -> Result<(WriteWork, InputReader?), NATSError> in
                do throws(NATSError) {
                    let action = try state.machine.request(token: token, bytes, subject: subject, headers: headers, headerLength: headerLength)
                    let reader = state.machine.requests.count == 1 ? state.inputReader : nil
                    return .success((state.work(for: action), reader))
                } catch {
                    return .failure(error)
                }
            }
        }
        let queued = payload.withContiguousStorageIfAvailable { enqueue(UnsafeRawBufferPointer($0)) }
            ?? Array(payload).withUnsafeBytes { enqueue($0) }
        switch queued {
        case .failure(let error):
            throw error
        case .success(let (work, reader)):
            await perform(work)
            if let reader { readReplyInline(reader, token: token, deadline: deadline) }
        }
        let timer = Reactor.shared.schedule(at: deadline) { [self] in
            finishRequest(token, .failure(NATSError(.timedOut, "no reply to the request on \"\(subject)\" within \(timeout)")))
        }
        state.withLock { state in
            // Only for a request still without its outcome: a reply that came before this line
            // has already finished it, and its timer would be kept for nothing.
            if case .sent(_)? = state.machine.requests[token] { state.requestTimers[token] = timer } else { timer.cancel() }
        }
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<NATSMessage, NATSError>, Never>) in
                let ready = state.withLock { state -> Result<NATSMessage, NATSError>? in
                    switch state.machine.requestWaits(token: token) {
                    case .ready(let result):
                        return result
                    case .wait:
                        state.requestWaiters[token] = continuation
                        return nil
                    case .gone:
                        return .failure(NATSError(.closed, "the client closed before the reply to \"\(subject)\""))
                    }
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finishRequest(token, .failure(NATSError(.cancelled, "the request to \"\(subject)\" was cancelled")))
        }
        return try result.get()
    }

    /// Sends a request with a string payload.
    public func request(_ text: String, subject: String, headers: NATSHeaders? = nil, timeout: Duration = .seconds(5)) async throws(NATSError)
        -> NATSMessage
    {
        try await request(text.utf8, subject: subject, headers: headers, timeout: timeout)
    }

    /// Reads for request `token` on the calling thread, when the connection's reader is parked
    /// and can be taken over: a reply that comes within the transport's inline wait then costs
    /// the requester one wake-up (its own `recv`), not two (the reactor's, then a pool thread's).
    func readReplyInline(_ reader: InputReader, token: UInt64, deadline: Deadline) {
        guard !Task.isCancelled, reader.takeOver() else { return }
        var read = false
        reader.readForReply(until: { [self] in
            let finished = state.withLock { state in
                if case .sent? = state.machine.requests[token] { return false }
                return true
            }
            if finished && read { repliesReadInline.wrappingAdd(1, ordering: .relaxed) }
            read = true
            return finished
        }, deadline: deadline)
    }

    /// Completes a request once: with its reply, its timeout, a cancellation or the close.
    func finishRequest(_ token: UInt64, _ result: Result<NATSMessage, NATSError>) {
        let (waiter, timer) = state.withLock { state -> (UnsafeContinuation<Result<NATSMessage, NATSError>, Never>?, ReactorTimer?) in
            switch state.machine.requestFinished(token: token, result) {
            case .resume:
                return (state.requestWaiters.removeValue(forKey: token), state.requestTimers.removeValue(forKey: token))
            case .stored:
                return (nil, state.requestTimers.removeValue(forKey: token))
            case .ignored:
                return (nil, nil)
            }
        }
        timer?.cancel()
        waiter?.resume(returning: result)
    }
}
