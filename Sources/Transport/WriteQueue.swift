/// The outbound side of a pipelining client, kept under the client's own lock: requests append
/// their bytes to ``pending``; the first one that finds no write in progress drains the queue
/// with ``Connection/writeQueued(take:giveBack:)``, so requests made meanwhile leave together in
/// one write. Two buffers take turns, so draining allocates nothing in the steady state.
public struct WriteQueue: Sendable {
    /// Bytes waiting to be written; append requests here.
    public var pending: ByteBuffer
    private var spare: ByteBuffer?
    /// Whether some task is draining the queue.
    public private(set) var isFlushing = false

    /// An empty queue.
    public init(capacity: Int = 16384) {
        pending = ByteBuffer(capacity: capacity)
    }

    /// Call after appending: true when the caller must drain the queue (no one else is).
    public mutating func claimFlush() -> Bool {
        if isFlushing { return false }
        isFlushing = true
        return true
    }

    /// The next batch to write; nil, ending the flush, when nothing is queued or `stop` holds.
    public mutating func nextBatch(stop: Bool) -> ByteBuffer? {
        if pending.isEmpty || stop {
            isFlushing = false
            return nil
        }
        let batch = pending
        pending = spare ?? ByteBuffer(capacity: 16384)
        spare = nil
        return batch
    }

    /// Takes back a written batch for reuse (unless it grew beyond 1 MiB).
    public mutating func recycle(_ batch: ByteBuffer) {
        guard batch.capacity <= 1 << 20 else { return }
        var emptied = batch
        emptied.clear()
        spare = emptied
    }
}

extension Connection {
    /// Writes the batches `take` hands out until it returns nil, handing each written buffer back
    /// through `giveBack`. Both closures run under the lock that guards the client's ``WriteQueue``.
    public func writeQueued(take: () -> ByteBuffer?, giveBack: (ByteBuffer) -> Void) async throws {
        while let batch = take() {
            try await write(batch)
            giveBack(batch)
        }
    }
}
