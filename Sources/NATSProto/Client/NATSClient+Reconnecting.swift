import Transport

extension NATSClient {
    /// Reacts to a broken link once: fails what cannot survive it, reports it, and reconnects
    /// (or closes the client).
    func linkFailed(_ link: Link, _ error: NATSError) {
        let work = state.withLock { state -> LinkFailure? in
            guard let loss = state.machine.connectionLost(generation: link.generation, protocolViolation: error.kind == .protocolViolation) else {
                return nil
            }
            var work = LinkFailure(reconnect: loss.reconnect)
            if state.link === link {
                state.link = nil
                state.inputReader = nil
            }
            for id in loss.failedFlushes {
                if let waiter = state.flushWaiters.removeValue(forKey: id) { work.flushes.append(waiter) }
                if let timer = state.flushTimers.removeValue(forKey: id) { work.timers.append(timer) }
            }
            work.interruptedRequests = loss.interruptedRequests
            work.writer = state.writer.take()
            swap(&work.capacityWaiters, &state.capacityWaiters)
            return work
        }
        guard let work else { return }
        link.connection.close()
        work.writer?.resume(returning: false)
        for waiter in work.capacityWaiters { waiter.resume() }
        for timer in work.timers { timer.cancel() }
        let lost = NATSError(.connection, "the connection was lost before the server answered the PING", server: link.server.redacted)
        for waiter in work.flushes { waiter.resume(returning: .failure(lost)) }
        for token in work.interruptedRequests {
            finishRequest(token, .failure(NATSError(
                .interrupted, "the connection broke after the request was sent and before its reply: it may have been processed",
                server: link.server.redacted)))
        }
        report(.disconnected(server: link.server.redacted, reason: error))
        if work.reconnect {
            Task { await self.reconnect(after: error) }
        } else {
            shutDown(reason: error)
        }
    }

    struct LinkFailure {
        var reconnect: Bool
        var writer: UnsafeContinuation<Bool, Never>?
        var capacityWaiters: [UnsafeContinuation<Void, Never>] = []
        var flushes: [UnsafeContinuation<Result<Void, NATSError>, Never>] = []
        var timers: [ReactorTimer] = []
        var interruptedRequests: [UInt64] = []
    }

    /// ADR-40, as the machine's server pool schedules it: servers in pool order, the lost one
    /// last; a server is tried no sooner than reconnectWait (plus jitter) after its previous
    /// attempt; one that failed more than maximumReconnectAttempts times in a row leaves the
    /// pool; an empty pool closes the client.
    private func reconnect(after cause: NATSError) async {
        var lastError = cause
        while true {
            let now = Deadline.now.uptimeNanoseconds
            let step = state.withLock { state in
                state.machine.nextReconnectStep(now: now, wait: options.reconnectWait.saturatingNanoseconds) { server in
                    let jitter = (server.tlsRequired || options.requireTLS ? options.reconnectJitterTLS : options.reconnectJitter).saturatingNanoseconds
                    return jitter > 0 ? UInt64.random(in: 0...jitter) : 0
                }
            }
            let server: NATSServerAddress
            switch step {
            case .stop:
                return
            case .giveUp:
                shutDown(reason: NATSError(.connection, "every server failed to reconnect; last: \(lastError.message)", server: lastError.server))
                return
            case .attempt(let chosen, let notBefore):
                server = chosen
                if notBefore > now { try? await Task.sleep(for: .nanoseconds(Int64(clamping: notBefore - now))) }
            }
            guard state.withLock({ $0.machine.reconnectAttemptStarts(server, now: Deadline.now.uptimeNanoseconds) }) else { return }
            do throws(NATSError) {
                try await establish(server, reconnecting: true)
                report(.reconnected(server: server.redacted))
                // Every subscription was restored; each may have missed messages meanwhile.
                let restored = state.withLock { Array($0.subscriptions.values) }
                for subscription in restored.sorted(by: { $0.sid < $1.sid }) {
                    subscription.noteGap()
                    report(.subscriptionGap(subject: subscription.subject, sid: subscription.sid))
                }
                return
            } catch {
                lastError = error
                state.withLock { $0.machine.reconnectAttemptFailed(server) }
            }
        }
    }

    // MARK: - Keep-alive

    /// PINGs the server every pingInterval; a connection with maximumPingsOutstanding PINGs
    /// unanswered is treated as lost.
    func startPinger() {
        let interval = options.pingInterval
        let task = Task { [self] in
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                let (stale, work) = state.withLock { state -> (Link?, WriteWork) in
                    switch state.machine.keepAliveTick() {
                    case .none: return (nil, .none)
                    case .stale: return (state.link, .none)
                    case .ping(let action): return (nil, state.work(for: action))
                    }
                }
                if let stale {
                    linkFailed(
                        stale,
                        NATSError(
                            .connection, "stale connection: \(options.maximumPingsOutstanding) PINGs went unanswered",
                            server: stale.server.redacted))
                }
                // The machine only wakes the writer for a PING; it never asks for an inline write.
                if case .wake(let writer) = work { writer.resume(returning: true) }
            }
        }
        state.withLock { $0.pinger = task }
    }
}
