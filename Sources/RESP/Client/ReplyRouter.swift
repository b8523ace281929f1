/// The pure state machine that matches replies to pipelined requests, in order.
///
/// Requests are identified by ids; each expects a number of replies (one for a command, N for a
/// pipeline). Pushes never consume a request's slot. A request whose caller went away keeps its
/// slot so that its replies are read and dropped, and the next request still gets its own.
struct ReplyRouter: Sendable {
    enum Action: Equatable {
        /// A push: deliver to the push handler.
        case push(RESPValue)
        /// The request is complete with these replies.
        case complete(UInt64, [RESPValue])
        /// A reply was stored; the request expects more.
        case waitForMore
        /// The reply belonged to an abandoned request and was dropped.
        case dropped
        /// A reply arrived with no request waiting: the stream is out of step.
        case unsolicited(RESPValue)
    }

    private struct Pending {
        let id: UInt64
        var remaining: Int
        var replies: [RESPValue]
        var isAbandoned: Bool
    }

    private var queue: [Pending] = []
    private var head = 0

    /// Requests waiting for replies (abandoned ones included).
    var pendingCount: Int { queue.count - head }

    /// Registers a request whose `replies` replies come next in the stream.
    mutating func enqueue(_ id: UInt64, replies: Int) {
        var pending = Pending(id: id, remaining: replies, replies: [], isAbandoned: false)
        // A pipeline's replies fill one array of known size: no regrowth while they arrive.
        if replies > 1 { pending.replies.reserveCapacity(replies) }
        queue.append(pending)
    }

    /// The caller no longer waits; its replies will be dropped. Returns false if it is unknown.
    @discardableResult
    mutating func abandon(_ id: UInt64) -> Bool {
        guard let index = queue[head...].firstIndex(where: { $0.id == id }) else { return false }
        queue[index].isAbandoned = true
        queue[index].replies = []
        return true
    }

    /// Routes one value read from the server.
    mutating func received(_ value: consuming RESPValue) -> Action {
        if value.isPush { return .push(value) }
        guard head < queue.count else { return .unsolicited(value) }
        queue[head].remaining -= 1
        if !queue[head].isAbandoned { queue[head].replies.append(value) }  // moved in: the last use
        guard queue[head].remaining == 0 else { return queue[head].isAbandoned ? .dropped : .waitForMore }
        // Moved out, not copied: the replies array keeps a single owner.
        var done = Pending(id: 0, remaining: 0, replies: [], isAbandoned: true)
        swap(&done, &queue[head])
        head += 1
        if head > 64 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        return done.isAbandoned ? .dropped : .complete(done.id, done.replies)
    }

    /// Every request still waiting, in order (the connection failed); the router is emptied.
    mutating func failAll() -> [UInt64] {
        failAllWithReplies().map(\.id)
    }

    /// The same, with the replies each had received (only the first can have some).
    mutating func failAllWithReplies() -> [(id: UInt64, replies: [RESPValue])] {
        let waiting = queue[head...].filter { !$0.isAbandoned }.map { (id: $0.id, replies: $0.replies) }
        queue.removeAll()
        head = 0
        return waiting
    }
}
