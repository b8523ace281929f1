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
    private let capacity: Int
    private let recycleLimit: Int

    /// An empty queue whose buffers start at `capacity` bytes; a written buffer is kept for reuse
    /// unless it grew beyond `recycleLimit`.
    public init(capacity: Int = 16384, recycleLimit: Int = 1 << 20) {
        pending = ByteBuffer(capacity: capacity)
        self.capacity = capacity
        self.recycleLimit = recycleLimit
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
        return takePending()
    }

    /// Hands out what is pending and puts the spare buffer (or a new one) in its place. For
    /// clients that schedule their own writer and use only the two-buffer rotation.
    public mutating func takePending() -> ByteBuffer {
        let batch = pending
        pending = spare ?? ByteBuffer(capacity: capacity)
        spare = nil
        return batch
    }

    /// Takes back a written batch for reuse (unless it grew beyond the recycle limit). Hand it
    /// over by move: a copy still held elsewhere would make the next append copy its bytes.
    public mutating func recycle(_ batch: consuming ByteBuffer) {
        guard batch.capacity <= recycleLimit else { return }
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
