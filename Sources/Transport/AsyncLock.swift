import Synchronization

/// A FIFO mutual-exclusion lock for async code. Acquiring it suspends (never blocks a thread)
/// while another task holds it; cancellation removes a waiting task from the queue.
final class AsyncLock: Sendable {
    private struct State {
        var isLocked = false
        var waiters: [(id: UInt64, continuation: UnsafeContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Acquires the lock, suspending while it is held. Throws `CancellationError` if the task is
    /// cancelled while waiting (the lock is then not held).
    func lock() async throws {
        let acquired = state.withLock { state -> Bool in
            if state.isLocked { return false }
            state.isLocked = true
            return true
        }
        if acquired { return }
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Bool? in
                    if !state.isLocked {
                        state.isLocked = true
                        return true
                    }
                    if Task.isCancelled { return false }
                    state.waiters.append((id, continuation))
                    return nil
                }
                switch outcome {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            let continuation = state.withLock { state -> UnsafeContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    /// Acquires the lock only if it is free right now.
    func tryLock() -> Bool {
        state.withLock { state -> Bool in
            if state.isLocked { return false }
            state.isLocked = true
            return true
        }
    }

    /// Releases the lock, handing it to the longest waiting task if there is one.
    func unlock() {
        let next = state.withLock { state -> UnsafeContinuation<Void, any Error>? in
            precondition(state.isLocked, "unlock of an AsyncLock that is not locked")  // safe: only the holder unlocks (lock/defer pairs)
            if state.waiters.isEmpty {
                state.isLocked = false
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
