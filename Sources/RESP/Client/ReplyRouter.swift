/// A request's replies: a lone reply is held as it is, so that a single command's answer costs
/// no array (an allocation per command on the sequential path).
enum Replies: Sendable, Equatable, ExpressibleByArrayLiteral {
    case one(RESPValue)
    case many([RESPValue])

    init(arrayLiteral elements: RESPValue...) {
        self = elements.count == 1 ? .one(elements[0]) : .many(elements)
    }

    /// The replies in order.
    var array: [RESPValue] {
        switch self {
        case .one(let value): [value]
        case .many(let values): values
        }
    }

    /// The first reply (a lone command's), or null if there is none.
    var first: RESPValue {
        switch self {
        case .one(let value): value
        case .many(let values): values.first ?? .null
        }
    }

    static func == (lhs: Replies, rhs: Replies) -> Bool { lhs.array == rhs.array }
}

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
        case complete(UInt64, Replies)
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
        /// The reply of a request that expects one (kept out of `replies`: no array).
        var single: RESPValue?
        var isAbandoned: Bool
        /// Only error replies are kept, each as `[index, error]` (an array of the command's
        /// index as an integer and the error value); the others are counted.
        var keepsOnlyErrors = false
        /// Replies received so far.
        var answered = 0
    }

    private var queue: [Pending] = []
    private var head = 0

    /// Requests waiting for replies (abandoned ones included).
    var pendingCount: Int { queue.count - head }

    /// Registers a request whose `replies` replies come next in the stream.
    /// `keepingOnlyErrors`: the request wants only its error replies, with their indices (see
    /// `Pending`); its other replies may be skipped unparsed (``skipped(_:)``).
    mutating func enqueue(_ id: UInt64, replies: Int, keepingOnlyErrors: Bool = false) {
        var pending = Pending(id: id, remaining: replies, replies: [], single: nil, isAbandoned: false, keepsOnlyErrors: keepingOnlyErrors)
        // A pipeline's replies fill one array of known size: no regrowth while they arrive.
        if replies > 1 && !keepingOnlyErrors { pending.replies.reserveCapacity(replies) }
        queue.append(pending)
    }

    /// How many of the next replies in the stream (pushes aside) belong to a request that keeps
    /// no value of a reply that is not an error (or to none that waits): the reader may skip
    /// such replies without building them and report them with ``skipped(_:)``.
    var skippableReplies: Int {
        guard head < queue.count, queue[head].keepsOnlyErrors || queue[head].isAbandoned else { return 0 }
        return queue[head].remaining
    }

    /// `count` replies that are neither errors nor pushes were read and not built; at most
    /// ``skippableReplies``.
    mutating func skipped(_ count: Int) -> Action {
        guard count > 0, head < queue.count, count <= queue[head].remaining else { return .waitForMore }
        queue[head].remaining -= count
        queue[head].answered += count
        guard queue[head].remaining == 0 else { return queue[head].isAbandoned ? .dropped : .waitForMore }
        return finishHead()
    }

    /// The errors a request keeping only errors collected, as `Pending` stores them: each with
    /// the index of its command.
    static func indexedErrors(_ kept: [RESPValue]) -> [(index: Int, error: RESPValue)] {
        var errors: [(index: Int, error: RESPValue)] = []
        for case .array(let pair) in kept where pair.count == 2 {
            if case .integer(let index) = pair[0] { errors.append((Int(index), pair[1])) }
        }
        return errors
    }

    /// What the replies of the request that failed midway were: the replies kept, and how many
    /// came in all.
    struct Received {
        var id: UInt64
        var replies: [RESPValue]
        var answered: Int
        var keepsOnlyErrors: Bool
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
        if !queue[head].isAbandoned {
            if !queue[head].keepsOnlyErrors {
                // Moved in: the last use.
                if queue[head].answered == 0 && queue[head].remaining == 0 {
                    queue[head].single = value
                } else {
                    queue[head].replies.append(value)
                }
            } else if value.isError {
                queue[head].replies.append(.array([.integer(Int64(queue[head].answered)), value]))
            }
        }
        queue[head].answered += 1
        guard queue[head].remaining == 0 else { return queue[head].isAbandoned ? .dropped : .waitForMore }
        return finishHead()
    }

    /// The head request has all its replies: it leaves the queue.
    private mutating func finishHead() -> Action {
        // Moved out, not copied: the replies array keeps a single owner.
        var done = Pending(id: 0, remaining: 0, replies: [], single: nil, isAbandoned: true)
        swap(&done, &queue[head])
        head += 1
        if head > 64 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        if done.isAbandoned { return .dropped }
        if let single = done.single { return .complete(done.id, .one(single)) }
        return .complete(done.id, .many(done.replies))
    }

    /// Every request still waiting, in order (the connection failed); the router is emptied.
    mutating func failAll() -> [UInt64] {
        failAllWithReplies().map(\.id)
    }

    /// The same, with what each had received (only the first can have replies).
    mutating func failAllWithReplies() -> [Received] {
        let waiting = queue[head...].filter { !$0.isAbandoned }.map {
            Received(id: $0.id, replies: $0.single.map { [$0] } ?? $0.replies, answered: $0.answered, keepsOnlyErrors: $0.keepsOnlyErrors)
        }
        queue.removeAll()
        head = 0
        return waiting
    }
}
