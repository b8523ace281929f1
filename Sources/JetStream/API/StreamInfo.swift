/// A stream's configuration and state, as `$JS.API.STREAM.INFO` returns it.
public struct StreamInfo: Decodable, Sendable {
    public var config: StreamConfig
    /// When the stream was created (RFC 3339, as the server wrote it).
    public var created: String
    public var state: StreamState
    /// The replicas, in a cluster.
    public var cluster: ClusterInfo?
    public var mirror: StreamSourceInfo?
    public var sources: [StreamSourceInfo]?

    enum CodingKeys: String, CodingKey {
        case config, created, state, cluster, mirror, sources
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        config = try container.decode(StreamConfig.self, forKey: .config)
        created = try container.value(.created, or: "")
        state = try container.value(.state, or: StreamState())
        cluster = try container.decodeIfPresent(ClusterInfo.self, forKey: .cluster)
        mirror = try container.decodeIfPresent(StreamSourceInfo.self, forKey: .mirror)
        sources = try container.decodeIfPresent([StreamSourceInfo].self, forKey: .sources)
    }
}

/// What a stream holds.
public struct StreamState: Decodable, Sendable, Equatable {
    public var messages: UInt64 = 0
    public var bytes: UInt64 = 0
    public var firstSequence: UInt64 = 0
    public var firstTime: String?
    public var lastSequence: UInt64 = 0
    public var lastTime: String?
    public var consumerCount = 0
    /// How many sequences between first and last were deleted.
    public var deletedCount = 0
    /// The deleted sequences, when asked for (`deletedDetails`).
    public var deleted: [UInt64]?
    /// How many distinct subjects hold messages.
    public var subjectCount = 0
    /// Messages per subject, when asked for (`subjectsFilter`).
    public var subjects: [String: UInt64]?

    init() {}

    enum CodingKeys: String, CodingKey {
        case messages, bytes, deleted, subjects
        case firstSequence = "first_seq", firstTime = "first_ts", lastSequence = "last_seq", lastTime = "last_ts"
        case consumerCount = "consumer_count", deletedCount = "num_deleted", subjectCount = "num_subjects"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        messages = try container.value(.messages, or: 0)
        bytes = try container.value(.bytes, or: 0)
        firstSequence = try container.value(.firstSequence, or: 0)
        firstTime = try container.decodeIfPresent(String.self, forKey: .firstTime)
        lastSequence = try container.value(.lastSequence, or: 0)
        lastTime = try container.decodeIfPresent(String.self, forKey: .lastTime)
        consumerCount = try container.value(.consumerCount, or: 0)
        deletedCount = try container.value(.deletedCount, or: 0)
        deleted = try container.decodeIfPresent([UInt64].self, forKey: .deleted)
        subjectCount = try container.value(.subjectCount, or: 0)
        subjects = try container.decodeIfPresent([String: UInt64].self, forKey: .subjects)
    }
}

/// The replicas of a clustered stream or consumer.
public struct ClusterInfo: Decodable, Sendable, Equatable {
    public var name: String?
    /// The server that leads, when there is one.
    public var leader: String?
    public var replicas: [PeerInfo]?

    /// One replica.
    public struct PeerInfo: Decodable, Sendable, Equatable {
        public var name: String
        public var current: Bool
        public var offline: Bool?
        /// Nanoseconds since it was last seen.
        public var active: Int64?
        /// Operations it is behind.
        public var lag: UInt64?
    }
}

/// The state of a mirror or source.
public struct StreamSourceInfo: Decodable, Sendable, Equatable {
    public var name: String
    /// Messages behind the origin.
    public var lag: UInt64?
    /// Nanoseconds since it was last active.
    public var active: Int64?
}

/// The account's JetStream usage and limits, as `$JS.API.INFO` returns them.
public struct AccountInfo: Decodable, Sendable {
    public var memory: UInt64
    public var storage: UInt64
    public var streams: Int
    public var consumers: Int
    public var limits: Limits
    /// The JetStream domain, when the server has one.
    public var domain: String?
    public var api: APIStatistics

    /// The account's limits (-1: unlimited).
    public struct Limits: Decodable, Sendable {
        public var maxMemory: Int64
        public var maxStorage: Int64
        public var maxStreams: Int
        public var maxConsumers: Int
        public var maxAckPending: Int?
        public var maxBytesRequired: Bool?

        enum CodingKeys: String, CodingKey {
            case maxMemory = "max_memory", maxStorage = "max_storage", maxStreams = "max_streams", maxConsumers = "max_consumers"
            case maxAckPending = "max_ack_pending", maxBytesRequired = "max_bytes_required"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            maxMemory = try container.value(.maxMemory, or: -1)
            maxStorage = try container.value(.maxStorage, or: -1)
            maxStreams = try container.value(.maxStreams, or: -1)
            maxConsumers = try container.value(.maxConsumers, or: -1)
            maxAckPending = try container.decodeIfPresent(Int.self, forKey: .maxAckPending)
            maxBytesRequired = try container.decodeIfPresent(Bool.self, forKey: .maxBytesRequired)
        }
    }

    /// API calls the account made.
    public struct APIStatistics: Decodable, Sendable {
        public var total: UInt64
        public var errors: UInt64
    }

    enum CodingKeys: String, CodingKey {
        case memory, storage, streams, consumers, limits, domain, api
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        memory = try container.value(.memory, or: 0)
        storage = try container.value(.storage, or: 0)
        streams = try container.value(.streams, or: 0)
        consumers = try container.value(.consumers, or: 0)
        limits = try container.decode(Limits.self, forKey: .limits)
        domain = try container.decodeIfPresent(String.self, forKey: .domain)
        api = try container.value(.api, or: APIStatistics(total: 0, errors: 0))
    }
}

/// The acknowledgement of a message stored by a stream.
public struct PubAck: Decodable, Sendable, Equatable {
    /// The stream that stored it.
    public var stream: String
    /// Its sequence in the stream.
    public var sequence: UInt64
    /// True when a message with the same `Nats-Msg-Id` was stored within the duplicate window:
    /// this one was not stored again.
    public var duplicate: Bool
    /// The JetStream domain, when the server has one.
    public var domain: String?

    enum CodingKeys: String, CodingKey {
        case stream, sequence = "seq", duplicate, domain
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        stream = try container.decode(String.self, forKey: .stream)
        sequence = try container.decode(UInt64.self, forKey: .sequence)
        duplicate = try container.value(.duplicate, or: false)
        domain = try container.decodeIfPresent(String.self, forKey: .domain)
    }
}
