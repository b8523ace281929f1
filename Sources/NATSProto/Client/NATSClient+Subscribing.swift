import Transport

extension NATSClient {
    /// A subject no other client uses, under the configured inbox prefix
    /// (`_INBOX.<nuid>`): the reply subject for a subscription of the caller's own.
    public func newInbox() -> String {
        var nuid = NUID()
        return options.inboxPrefix + "." + nuid.next()
    }

    /// Subscribes to `subject` (wildcards allowed), in queue group `queue` if given. The SUB is
    /// sent with the next write; ``flush(timeout:)`` confirms the server has it.
    public func subscribe(to subject: String, queue: String? = nil, pendingLimits: NATSPendingLimits? = nil) async throws(NATSError)
        -> NATSSubscription
    {
        try NATSSubject.validate(subject, wildcards: true, as: "subject")
        if let queue {
            do throws(NATSUsageError) { try NATSSubject.validateQueue(queue) } catch { throw .usage(error) }
        }
        let (subscription, work) = try state.withLock { state throws(NATSError) -> (NATSSubscription, WriteWork) in
            let (sid, action) = try state.machine.subscribe(subject: subject, queue: queue)
            let subscription = NATSSubscription(
                client: self, subject: subject, queue: queue, sid: sid, limits: pendingLimits ?? options.pendingLimits)
            state.subscriptions[sid] = subscription
            return (subscription, state.work(for: action))
        }
        await perform(work)
        return subscription
    }

    func unsubscribe(_ subscription: NATSSubscription, after maximum: Int?) async throws(NATSError) {
        if let maximum, subscription.setMaximum(maximum) {
            removeSubscription(subscription, sendUnsubscribe: true)
            return
        }
        let work = try state.withLock { state throws(NATSError) -> WriteWork in
            let action = try state.machine.unsubscribe(sid: subscription.sid, after: maximum)
            if maximum == nil { state.subscriptions[subscription.sid] = nil }
            return state.work(for: action)
        }
        await perform(work)
        if maximum == nil { subscription.finish(.finished, discarding: true) }
    }

    /// Forgets a subscription that ended (auto-unsubscribe count reached, or its consumer went
    /// away); `sendUnsubscribe` tells the server. Never suspends: the reader calls it.
    func removeSubscription(_ subscription: NATSSubscription, sendUnsubscribe: Bool) {
        let work = state.withLock { state -> WriteWork in
            state.subscriptions[subscription.sid] = nil
            return state.work(for: state.machine.subscriptionEnded(sid: subscription.sid, sendUnsubscribe: sendUnsubscribe))
        }
        // The machine only ever wakes the writer here; it never asks for an inline write.
        if case .wake(let writer) = work { writer.resume(returning: true) }
    }

    func drain(_ subscription: NATSSubscription) async throws(NATSError) {
        let work = try state.withLock { state throws(NATSError) -> WriteWork in
            let action = try state.machine.drainSubscription(sid: subscription.sid)
            state.subscriptions[subscription.sid] = nil
            return state.work(for: action)
        }
        await perform(work)
        // The PONG comes after every message the server sent before it saw the UNSUB.
        defer { subscription.finish(.finished, discarding: false) }
        try await flush(timeout: options.drainTimeout)
    }
}
