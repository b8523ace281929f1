import Transport

extension NATSClient {
    // MARK: - Flush

    /// Sends a PING after everything queued so far and waits for the PONG: when it returns, the
    /// server has processed every publish and subscription made before the call. A connection
    /// lost meanwhile is waited out (the PING is sent again after reconnecting) until `timeout`.
    public func flush(timeout: Duration = .seconds(10)) async throws(NATSError) {
        let deadline = Deadline.after(timeout)
        while true {
            do throws(NATSError) {
                try await pingAndWait(deadline: deadline, timeout: timeout)
                return
            } catch where error.kind == .connection && !deadline.hasPassed && !isClosed {
                continue
            }
        }
    }

    private func pingAndWait(deadline: Deadline, timeout: Duration) async throws(NATSError) {
        let id = state.withLock { state -> UInt64 in
            state.nextFlushID &+= 1
            return state.nextFlushID
        }
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<Void, NATSError>, Never>) in
                let outcome = state.withLock { state -> Result<WriteWork, NATSError> in
                    do throws(NATSError) {
                        if Task.isCancelled {
                            try state.machine.checkOpen()
                            throw NATSError(.cancelled, "flush was cancelled")
                        }
                        let action = try state.machine.flush(id: id)
                        state.flushWaiters[id] = continuation
                        return .success(state.work(for: action))
                    } catch {
                        return .failure(error)
                    }
                }
                switch outcome {
                case .success(let work):
                    // The machine only wakes the writer for a PING; it never asks for an inline write.
                    if case .wake(let writer) = work { writer.resume(returning: true) }
                    let timer = Reactor.shared.schedule(at: deadline) { [self] in
                        finishFlush(id, .failure(NATSError(.timedOut, "no PONG within \(timeout) of the flush")))
                    }
                    // Whoever completes the flush first cancels the timer.
                    state.withLock { state in
                        if state.flushWaiters[id] != nil { state.flushTimers[id] = timer } else { timer.cancel() }
                    }
                case .failure(let error):
                    continuation.resume(returning: .failure(error))
                }
            }
        } onCancel: {
            finishFlush(id, .failure(NATSError(.cancelled, "flush was cancelled")))
        }
        try result.get()
    }

    func finishFlush(_ id: UInt64, _ result: Result<Void, NATSError>) {
        let (waiter, timer) = state.withLock { state in
            (state.flushWaiters.removeValue(forKey: id), state.flushTimers.removeValue(forKey: id))
        }
        timer?.cancel()
        waiter?.resume(returning: result)
    }

    // MARK: - Drain and close

    /// Ends the client gracefully: every subscription stops its interest, receives what the
    /// server had already sent it and ends once consumed; pending requests get their replies;
    /// then everything published is flushed and the connection closed. New subscriptions and
    /// requests are refused meanwhile; publishes are still accepted. Bounded by
    /// ``NATSConfiguration/drainTimeout``; the client is closed however it ends.
    public func drain() async throws(NATSError) {
        let deadline = Deadline.after(options.drainTimeout)
        let (subscriptions, work) = try state.withLock { state throws(NATSError) -> ([NATSSubscription], WriteWork) in
            let (sids, action) = try state.machine.drainAll()
            let subscriptions = sids.compactMap { state.subscriptions.removeValue(forKey: $0) }
            return (subscriptions, state.work(for: action))
        }
        await perform(work)
        var failure: NATSError?
        do throws(NATSError) {
            try await flush(timeout: remaining(until: deadline))
        } catch {
            failure = error
        }
        for subscription in subscriptions { subscription.finish(.finished, discarding: false) }
        // Wait for the consumers, and for replies to requests made before the drain.
        while !deadline.hasPassed {
            let requestsPending = state.withLock { $0.machine.hasOutstandingRequests }
            if !requestsPending && subscriptions.allSatisfy(\.isConsumed) { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        if failure == nil {
            do throws(NATSError) {
                try await flush(timeout: remaining(until: deadline))
            } catch {
                failure = error
            }
        }
        await close()
        if let failure, failure.kind != .closed { throw failure }
        if deadline.hasPassed { throw NATSError(.timedOut, "drain did not finish within \(options.drainTimeout)") }
    }

    /// Closes the client: what is already in the outbound buffer is written (for up to a second),
    /// then the connection is closed. Subscriptions end, waiting requests and flushes fail with
    /// ``NATSError/Kind/closed``, and ``events`` finishes.
    public func close() async {
        let deadline = Deadline.after(.seconds(1))
        while !deadline.hasPassed {
            let idle = state.withLock { state -> Bool in
                state.machine.phase != .connected || (state.machine.outgoing.pending.isEmpty && !state.machine.writerBusy)
            }
            if idle { break }
            try? await Task.sleep(for: .milliseconds(1))
        }
        shutDown(reason: nil)
    }

    private func remaining(until deadline: Deadline) -> Duration {
        let now = Deadline.now.uptimeNanoseconds
        return .nanoseconds(Int64(clamping: deadline.uptimeNanoseconds > now ? deadline.uptimeNanoseconds - now : 0))
    }

    /// Closes for good, failing everyone who waits.
    func shutDown(reason: NATSError?) {
        let taken = state.withLock { state -> ShutDownWork? in
            guard state.machine.close(reason: reason) else { return nil }
            var work = ShutDownWork()
            work.link = state.link.take()
            // The reader holds the client: dropping it here ends that cycle.
            state.inputReader = nil
            work.writer = state.writer.take()
            swap(&work.capacityWaiters, &state.capacityWaiters)
            work.flushes = Array(state.flushWaiters.values)
            state.flushWaiters.removeAll()
            work.requests = Array(state.requestWaiters.values)
            state.requestWaiters.removeAll()
            work.timers = Array(state.requestTimers.values) + Array(state.flushTimers.values)
            state.requestTimers.removeAll()
            state.flushTimers.removeAll()
            work.subscriptions = Array(state.subscriptions.values)
            state.subscriptions.removeAll()
            work.pinger = state.pinger.take()
            return work
        }
        guard let taken else { return }
        let error = reason.map { NATSError(.closed, "the client closed: \($0.message)", server: $0.server) }
            ?? NATSError(.closed, "the client was closed")
        taken.pinger?.cancel()
        for timer in taken.timers { timer.cancel() }
        taken.link?.connection.close()
        taken.writer?.resume(returning: false)
        for waiter in taken.capacityWaiters { waiter.resume() }
        for waiter in taken.flushes { waiter.resume(returning: .failure(error)) }
        for waiter in taken.requests { waiter.resume(returning: .failure(error)) }
        for subscription in taken.subscriptions {
            subscription.finish(reason.map { .failed(error.with(reason: $0)) } ?? .finished, discarding: false)
        }
        report(.closed(reason: reason))
        eventSink.finish()
    }

    struct ShutDownWork {
        var link: NATSClient.Link?
        var writer: UnsafeContinuation<Bool, Never>?
        var capacityWaiters: [UnsafeContinuation<Void, Never>] = []
        var flushes: [UnsafeContinuation<Result<Void, NATSError>, Never>] = []
        var requests: [UnsafeContinuation<Result<NATSMessage, NATSError>, Never>] = []
        var timers: [ReactorTimer] = []
        var subscriptions: [NATSSubscription] = []
        var pinger: Task<Void, Never>?
    }
}
