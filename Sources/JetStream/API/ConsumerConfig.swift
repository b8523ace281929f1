/// Where a new consumer starts in its stream.
public enum DeliverPolicy: String, Codable, Sendable {
    case all
    case last
    case new
    case byStartSequence = "by_start_sequence"
    case byStartTime = "by_start_time"
    case lastPerSubject = "last_per_subject"
}

/// What a consumer expects acknowledged.
public enum AckPolicy: String, Codable, Sendable {
    /// Nothing: delivered is done.
    case none
    /// One ack acknowledges every message before it too.
    case all
    /// Each message on its own.
    case explicit
}

/// How fast a consumer replays stored messages.
public enum ReplayPolicy: String, Codable, Sendable {
    case instant
    case original
}

/// A consumer's configuration, as `$JS.API.CONSUMER.CREATE` takes it and `CONSUMER.INFO`
/// returns it. A pull consumer has no `deliverSubject`.
public struct ConsumerConfig: Codable, Sendable, Equatable {
    /// A durable consumer's name (kept while inactive); nil for an ephemeral one.
    public var durableName: String?
    /// The consumer's name (2.9+; for an ephemeral consumer too).
    public var name: String?
    public var description: String?
    public var deliverPolicy: DeliverPolicy = .all
    public var optStartSequence: UInt64?
    /// RFC 3339.
    public var optStartTime: String?
    public var ackPolicy: AckPolicy = .explicit
    /// How long the server waits for an ack before redelivering; 0: the server's default (30 s).
    public var ackWait: Duration = .zero
    /// -1: unlimited.
    public var maxDeliver = -1
    /// Redelivery delays, one per attempt.
    public var backoff: [Duration]?
    public var filterSubject: String?
    /// Several filters (2.10+).
    public var filterSubjects: [String]?
    public var replayPolicy: ReplayPolicy = .instant
    public var rateLimit: UInt64?
    public var sampleFrequency: String?
    /// Pull requests waiting at most (pull consumers).
    public var maxWaiting: Int?
    public var maxAckPending: Int?
    public var headersOnly = false
    /// The largest batch a pull request may ask for.
    public var maxRequestBatch: Int?
    /// The longest a pull request may wait.
    public var maxRequestExpires: Duration?
    /// The most bytes a pull request may ask for.
    public var maxRequestMaxBytes: Int?
    /// An idle consumer is deleted after this long.
    public var inactiveThreshold: Duration?
    /// 0: the stream's.
    public var replicas = 0
    public var memoryStorage = false
    /// Push consumers only: where messages are delivered.
    public var deliverSubject: String?
    public var deliverGroup: String?
    public var flowControl = false
    public var idleHeartbeat: Duration?
    /// 2.10+.
    public var metadata: [String: String]?
    /// Paused until this time, RFC 3339 (2.11+).
    public var pauseUntil: String?

    /// A pull consumer; `durableName` nil for an ephemeral one.
    public init(durableName: String? = nil, ackPolicy: AckPolicy = .explicit, filterSubject: String? = nil) {
        self.durableName = durableName
        self.ackPolicy = ackPolicy
        self.filterSubject = filterSubject
    }

    enum CodingKeys: String, CodingKey {
        case name, description, backoff, metadata
        case durableName = "durable_name", deliverPolicy = "deliver_policy", optStartSequence = "opt_start_seq"
        case optStartTime = "opt_start_time", ackPolicy = "ack_policy", ackWait = "ack_wait", maxDeliver = "max_deliver"
        case filterSubject = "filter_subject", filterSubjects = "filter_subjects", replayPolicy = "replay_policy"
        case rateLimit = "rate_limit_bps", sampleFrequency = "sample_freq", maxWaiting = "max_waiting", maxAckPending = "max_ack_pending"
        case headersOnly = "headers_only", maxRequestBatch = "max_batch", maxRequestExpires = "max_expires"
        case maxRequestMaxBytes = "max_bytes", inactiveThreshold = "inactive_threshold", replicas = "num_replicas"
        case memoryStorage = "mem_storage", deliverSubject = "deliver_subject", deliverGroup = "deliver_group"
        case flowControl = "flow_control", idleHeartbeat = "idle_heartbeat", pauseUntil = "pause_until"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        durableName = try container.decodeIfPresent(String.self, forKey: .durableName)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        description = try container.decodeIfPresent(String.self, forKey: .description)
        deliverPolicy = try container.value(.deliverPolicy, or: .all)
        optStartSequence = try container.decodeIfPresent(UInt64.self, forKey: .optStartSequence)
        optStartTime = try container.decodeIfPresent(String.self, forKey: .optStartTime)
        ackPolicy = try container.value(.ackPolicy, or: .explicit)
        ackWait = try container.duration(.ackWait)
        maxDeliver = try container.value(.maxDeliver, or: -1)
        backoff = try container.decodeIfPresent([Int64].self, forKey: .backoff)?.map { .nanoseconds($0) }
        filterSubject = try container.decodeIfPresent(String.self, forKey: .filterSubject)
        filterSubjects = try container.decodeIfPresent([String].self, forKey: .filterSubjects)
        replayPolicy = try container.value(.replayPolicy, or: .instant)
        rateLimit = try container.decodeIfPresent(UInt64.self, forKey: .rateLimit)
        sampleFrequency = try container.decodeIfPresent(String.self, forKey: .sampleFrequency)
        maxWaiting = try container.decodeIfPresent(Int.self, forKey: .maxWaiting)
        maxAckPending = try container.decodeIfPresent(Int.self, forKey: .maxAckPending)
        headersOnly = try container.value(.headersOnly, or: false)
        maxRequestBatch = try container.decodeIfPresent(Int.self, forKey: .maxRequestBatch)
        maxRequestExpires = try container.optionalDuration(.maxRequestExpires)
        maxRequestMaxBytes = try container.decodeIfPresent(Int.self, forKey: .maxRequestMaxBytes)
        inactiveThreshold = try container.optionalDuration(.inactiveThreshold)
        replicas = try container.value(.replicas, or: 0)
        memoryStorage = try container.value(.memoryStorage, or: false)
        deliverSubject = try container.decodeIfPresent(String.self, forKey: .deliverSubject)
        deliverGroup = try container.decodeIfPresent(String.self, forKey: .deliverGroup)
        flowControl = try container.value(.flowControl, or: false)
        idleHeartbeat = try container.optionalDuration(.idleHeartbeat)
        metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata)
        pauseUntil = try container.decodeIfPresent(String.self, forKey: .pauseUntil)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ifPresent: durableName, forKey: .durableName)
        try container.encode(ifPresent: name, forKey: .name)
        try container.encode(ifPresent: description, forKey: .description)
        try container.encode(deliverPolicy, forKey: .deliverPolicy)
        try container.encode(ifPresent: optStartSequence, forKey: .optStartSequence)
        try container.encode(ifPresent: optStartTime, forKey: .optStartTime)
        try container.encode(ackPolicy, forKey: .ackPolicy)
        if ackWait > .zero { try container.encode(duration: ackWait, forKey: .ackWait) }
        if maxDeliver != -1 { try container.encode(maxDeliver, forKey: .maxDeliver) }
        try container.encode(ifPresent: backoff?.map(\.nanoseconds), forKey: .backoff)
        try container.encode(ifPresent: filterSubject, forKey: .filterSubject)
        try container.encode(ifPresent: filterSubjects, forKey: .filterSubjects)
        try container.encode(replayPolicy, forKey: .replayPolicy)
        try container.encode(ifPresent: rateLimit, forKey: .rateLimit)
        try container.encode(ifPresent: sampleFrequency, forKey: .sampleFrequency)
        try container.encode(ifPresent: maxWaiting, forKey: .maxWaiting)
        try container.encode(ifPresent: maxAckPending, forKey: .maxAckPending)
        try container.encode(ifTrue: headersOnly, forKey: .headersOnly)
        try container.encode(ifPresent: maxRequestBatch, forKey: .maxRequestBatch)
        try container.encode(ifPresent: maxRequestExpires?.nanoseconds, forKey: .maxRequestExpires)
        try container.encode(ifPresent: maxRequestMaxBytes, forKey: .maxRequestMaxBytes)
        try container.encode(ifPresent: inactiveThreshold?.nanoseconds, forKey: .inactiveThreshold)
        if replicas > 0 { try container.encode(replicas, forKey: .replicas) }
        try container.encode(ifTrue: memoryStorage, forKey: .memoryStorage)
        try container.encode(ifPresent: deliverSubject, forKey: .deliverSubject)
        try container.encode(ifPresent: deliverGroup, forKey: .deliverGroup)
        try container.encode(ifTrue: flowControl, forKey: .flowControl)
        try container.encode(ifPresent: idleHeartbeat?.nanoseconds, forKey: .idleHeartbeat)
        try container.encode(ifPresent: metadata, forKey: .metadata)
        try container.encode(ifPresent: pauseUntil, forKey: .pauseUntil)
    }

    /// The features this configuration uses that need a newer server than `version`, named.
    func featuresMissing(on version: ServerVersion) -> [String] {
        var missing: [String] = []
        if version < ServerVersion(2, 10) {
            if filterSubjects != nil { missing.append("several filter subjects (2.10)") }
            if metadata != nil { missing.append("metadata (2.10)") }
        }
        if version < ServerVersion(2, 11), pauseUntil != nil { missing.append("pause (2.11)") }
        return missing
    }
}

/// A consumer's configuration and state, as `$JS.API.CONSUMER.INFO` returns them.
public struct ConsumerInfo: Decodable, Sendable {
    public var stream: String
    public var name: String
    public var created: String
    public var config: ConsumerConfig
    /// The last message delivered.
    public var delivered: SequenceInfo
    /// Everything up to here is acknowledged.
    public var ackFloor: SequenceInfo
    public var ackPendingCount: Int
    public var redeliveredCount: Int
    /// Pull requests waiting.
    public var waitingCount: Int
    /// Messages left to deliver.
    public var pendingCount: UInt64
    public var cluster: ClusterInfo?
    /// 2.11+.
    public var isPaused: Bool

    /// A position in the consumer's and the stream's sequences.
    public struct SequenceInfo: Decodable, Sendable, Equatable {
        public var consumerSequence: UInt64
        public var streamSequence: UInt64

        enum CodingKeys: String, CodingKey {
            case consumerSequence = "consumer_seq", streamSequence = "stream_seq"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            consumerSequence = try container.value(.consumerSequence, or: 0)
            streamSequence = try container.value(.streamSequence, or: 0)
        }
    }

    enum CodingKeys: String, CodingKey {
        case name, created, config, delivered, cluster
        case stream = "stream_name", ackFloor = "ack_floor", ackPendingCount = "num_ack_pending", redeliveredCount = "num_redelivered"
        case waitingCount = "num_waiting", pendingCount = "num_pending", isPaused = "paused"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        stream = try container.decode(String.self, forKey: .stream)
        name = try container.decode(String.self, forKey: .name)
        created = try container.value(.created, or: "")
        config = try container.decode(ConsumerConfig.self, forKey: .config)
        delivered = try container.decode(SequenceInfo.self, forKey: .delivered)
        ackFloor = try container.decode(SequenceInfo.self, forKey: .ackFloor)
        ackPendingCount = try container.value(.ackPendingCount, or: 0)
        redeliveredCount = try container.value(.redeliveredCount, or: 0)
        waitingCount = try container.value(.waitingCount, or: 0)
        pendingCount = try container.value(.pendingCount, or: 0)
        cluster = try container.decodeIfPresent(ClusterInfo.self, forKey: .cluster)
        isPaused = try container.value(.isPaused, or: false)
    }
}
