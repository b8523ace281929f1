import Transport

extension NATSClient {
    /// Writes what is queued for connection `link`, batch after batch, parking while there is
    /// nothing to write, until the connection is no longer current.
    func writeLoop(_ link: Link) async {
        var written: ByteBuffer?
        // The written buffer is handed back by move: a second reference would make the next
        // append copy it.
        while let batch = await nextBatch(link, giveBack: written.take()) {
            do {
                try await link.connection.write(batch)
            } catch {
                linkFailed(link, Self.connectionError(error, link.server, doing: "writing"))
                return
            }
            written = batch
        }
    }

    /// The next bytes to write for `link`, parking the writer while there are none; nil once
    /// the link is no longer current.
    private func nextBatch(_ link: Link, giveBack: consuming ByteBuffer?) async -> ByteBuffer? {
        var returned = giveBack
        while true {
            let (step, waiters) = state.withLock { state -> (NATSConnectionStateMachine.WriterStep, [UnsafeContinuation<Void, Never>]) in
                let step = state.machine.writerNext(generation: link.generation, written: returned.take())
                guard case .write = step, !state.capacityWaiters.isEmpty else { return (step, []) }
                // The buffer was emptied: publishers waiting for room go on.
                var waiters: [UnsafeContinuation<Void, Never>] = []
                swap(&waiters, &state.capacityWaiters)
                return (step, waiters)
            }
            for waiter in waiters { waiter.resume() }
            switch step {
            case .write(let batch): return batch
            case .exit: return nil
            case .park: break
            }
            let goOn = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                let immediate = state.withLock { state -> Bool? in
                    switch state.machine.writerParks(generation: link.generation) {
                    case .exit: return false
                    case .retry: return true
                    case .park:
                        state.writer = continuation
                        return nil
                    }
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
            if !goOn { return nil }
        }
    }
}
