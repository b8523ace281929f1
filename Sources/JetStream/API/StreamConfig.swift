/// How a stream keeps messages.
public enum RetentionPolicy: String, Codable, Sendable {
    /// Until a limit (count, bytes, age) removes them.
    case limits
    /// While some consumer still has to see them.
    case interest
    /// Until one consumer acknowledges them (a work queue).
    case workqueue
}

/// What a full stream does with a new message.
public enum DiscardPolicy: String, Codable, Sendable {
    /// Removes the oldest messages.
    case old
    /// Refuses the new one.
    case new
}

/// Where a stream keeps its messages.
public enum StorageType: String, Codable, Sendable {
    /// On disk.
    case file
    /// In memory.
    case memory
}

/// Compression of a file-stored stream (nats-server 2.10+).
public enum StoreCompression: String, Codable, Sendable {
    case none
    case s2
}

/// A stream's configuration, as `$JS.API.STREAM.CREATE` takes it and `STREAM.INFO` returns it.
/// Fields left at their defaults are not sent, as nats.go does; fields newer than nats-server
/// 2.9 are sent only when set (and refused by the client on an older server).
public struct StreamConfig: Codable, Sendable, Equatable {
    /// The name (letters, digits, `-` and `_`).
    public var name: String
    public var description: String?
    /// The subjects it stores (wildcards allowed).
    public var subjects: [String] = []
    public var retention: RetentionPolicy = .limits
    /// -1: unlimited.
    public var maxConsumers = -1
    /// -1: unlimited.
    public var maxMessages: Int64 = -1
    /// -1: unlimited.
    public var maxBytes: Int64 = -1
    public var discard: DiscardPolicy = .old
    /// With ``DiscardPolicy/new``: refuse per subject once `maxMessagesPerSubject` is reached.
    public var discardNewPerSubject = false
    /// 0: unlimited.
    public var maxAge: Duration = .zero
    /// -1: unlimited.
    public var maxMessagesPerSubject: Int64 = -1
    /// -1: the server's max_payload.
    public var maxMessageSize: Int32 = -1
    public var storage: StorageType = .file
    public var replicas = 1
    public var noAck = false
    /// The `Nats-Msg-Id` deduplication window; 0: the server's default (2 minutes).
    public var duplicateWindow: Duration = .zero
    public var placement: Placement?
    public var mirror: StreamSource?
    public var sources: [StreamSource]?
    public var sealed = false
    public var denyDelete = false
    public var denyPurge = false
    /// Whether `Nats-Rollup` headers may purge (KV purge and Object Store meta need it).
    public var allowRollup = false
    /// Whether `$JS.API.DIRECT.GET` answers from any replica (KV get needs it).
    public var allowDirect = false
    public var mirrorDirect = false
    public var republish: Republish?
    /// nats-server 2.10+.
    public var compression: StoreCompression?
    /// nats-server 2.10+.
    public var firstSequence: UInt64?
    /// nats-server 2.10+.
    public var subjectTransform: SubjectTransform?
    /// nats-server 2.10+.
    public var metadata: [String: String]?
    /// nats-server 2.10+.
    public var consumerLimits: ConsumerLimits?
    /// Per-message TTL (`Nats-TTL`), nats-server 2.11+.
    public var allowMessageTTL = false
    /// nats-server 2.11+.
    public var subjectDeleteMarkerTTL: Duration?

    /// A stream named `name` storing `subjects`.
    public init(name: String, subjects: [String] = []) {
        self.name = name
        self.subjects = subjects
    }

    /// Where replicas are placed.
    public struct Placement: Codable, Sendable, Equatable {
        public var cluster: String?
        public var tags: [String]?

        public init(cluster: String? = nil, tags: [String]? = nil) {
            self.cluster = cluster
            self.tags = tags
        }
    }

    /// Another stream this one mirrors or sources from.
    public struct StreamSource: Codable, Sendable, Equatable {
        public var name: String
        public var optStartSeq: UInt64?
        public var optStartTime: String?
        public var filterSubject: String?
        public var domain: String?

        public init(name: String, filterSubject: String? = nil) {
            self.name = name
            self.filterSubject = filterSubject
        }

        enum CodingKeys: String, CodingKey {
            case name, domain
            case optStartSeq = "opt_start_seq", optStartTime = "opt_start_time", filterSubject = "filter_subject"
        }
    }

    /// Messages re-published to another subject once stored.
    public struct Republish: Codable, Sendable, Equatable {
        public var source: String
        public var destination: String
        public var headersOnly: Bool?

        public init(source: String, destination: String, headersOnly: Bool? = nil) {
            self.source = source
            self.destination = destination
            self.headersOnly = headersOnly
        }

        enum CodingKeys: String, CodingKey {
            case source = "src", destination = "dest", headersOnly = "headers_only"
        }
    }

    /// A subject mapping applied on the way in (2.10+).
    public struct SubjectTransform: Codable, Sendable, Equatable {
        public var source: String
        public var destination: String

        public init(source: String, destination: String) {
            self.source = source
            self.destination = destination
        }

        enum CodingKeys: String, CodingKey {
            case source = "src", destination = "dest"
        }
    }

    /// Defaults for the stream's consumers (2.10+).
    public struct ConsumerLimits: Codable, Sendable, Equatable {
        public var inactiveThreshold: Duration?
        public var maxAckPending: Int?

        public init(inactiveThreshold: Duration? = nil, maxAckPending: Int? = nil) {
            self.inactiveThreshold = inactiveThreshold
            self.maxAckPending = maxAckPending
        }

        enum CodingKeys: String, CodingKey {
            case inactiveThreshold = "inactive_threshold", maxAckPending = "max_ack_pending"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            inactiveThreshold = try container.optionalDuration(.inactiveThreshold)
            maxAckPending = try container.decodeIfPresent(Int.self, forKey: .maxAckPending)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            if let inactiveThreshold { try container.encode(duration: inactiveThreshold, forKey: .inactiveThreshold) }
            try container.encode(ifPresent: maxAckPending, forKey: .maxAckPending)
        }
    }

    enum CodingKeys: String, CodingKey {
        case name, description, subjects, retention, discard, storage, placement, mirror, sources, sealed, republish, compression, metadata
        case maxConsumers = "max_consumers", maxMessages = "max_msgs", maxBytes = "max_bytes"
        case discardNewPerSubject = "discard_new_per_subject", maxAge = "max_age", maxMessagesPerSubject = "max_msgs_per_subject"
        case maxMessageSize = "max_msg_size", replicas = "num_replicas", noAck = "no_ack", duplicateWindow = "duplicate_window"
        case denyDelete = "deny_delete", denyPurge = "deny_purge", allowRollup = "allow_rollup_hdrs", allowDirect = "allow_direct"
        case mirrorDirect = "mirror_direct", firstSequence = "first_seq", subjectTransform = "subject_transform"
        case consumerLimits = "consumer_limits", allowMessageTTL = "allow_msg_ttl", subjectDeleteMarkerTTL = "subject_delete_marker_ttl"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.value(.name, or: "")
        description = try container.decodeIfPresent(String.self, forKey: .description)
        subjects = try container.value(.subjects, or: [])
        retention = try container.value(.retention, or: .limits)
        maxConsumers = try container.value(.maxConsumers, or: -1)
        maxMessages = try container.value(.maxMessages, or: -1)
        maxBytes = try container.value(.maxBytes, or: -1)
        discard = try container.value(.discard, or: .old)
        discardNewPerSubject = try container.value(.discardNewPerSubject, or: false)
        maxAge = try container.duration(.maxAge)
        maxMessagesPerSubject = try container.value(.maxMessagesPerSubject, or: -1)
        maxMessageSize = try container.value(.maxMessageSize, or: -1)
        storage = try container.value(.storage, or: .file)
        replicas = try container.value(.replicas, or: 1)
        noAck = try container.value(.noAck, or: false)
        duplicateWindow = try container.duration(.duplicateWindow)
        placement = try container.decodeIfPresent(Placement.self, forKey: .placement)
        mirror = try container.decodeIfPresent(StreamSource.self, forKey: .mirror)
        sources = try container.decodeIfPresent([StreamSource].self, forKey: .sources)
        sealed = try container.value(.sealed, or: false)
        denyDelete = try container.value(.denyDelete, or: false)
        denyPurge = try container.value(.denyPurge, or: false)
        allowRollup = try container.value(.allowRollup, or: false)
        allowDirect = try container.value(.allowDirect, or: false)
        mirrorDirect = try container.value(.mirrorDirect, or: false)
        republish = try container.decodeIfPresent(Republish.self, forKey: .republish)
        compression = try container.decodeIfPresent(StoreCompression.self, forKey: .compression)
        firstSequence = try container.decodeIfPresent(UInt64.self, forKey: .firstSequence)
        subjectTransform = try container.decodeIfPresent(SubjectTransform.self, forKey: .subjectTransform)
        metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata)
        consumerLimits = try container.decodeIfPresent(ConsumerLimits.self, forKey: .consumerLimits)
        allowMessageTTL = try container.value(.allowMessageTTL, or: false)
        subjectDeleteMarkerTTL = try container.optionalDuration(.subjectDeleteMarkerTTL)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(ifPresent: description, forKey: .description)
        if !subjects.isEmpty { try container.encode(subjects, forKey: .subjects) }
        try container.encode(retention, forKey: .retention)
        try container.encode(maxConsumers, forKey: .maxConsumers)
        try container.encode(maxMessages, forKey: .maxMessages)
        try container.encode(maxBytes, forKey: .maxBytes)
        try container.encode(discard, forKey: .discard)
        try container.encode(ifTrue: discardNewPerSubject, forKey: .discardNewPerSubject)
        try container.encode(duration: maxAge, forKey: .maxAge)
        try container.encode(maxMessagesPerSubject, forKey: .maxMessagesPerSubject)
        try container.encode(maxMessageSize, forKey: .maxMessageSize)
        try container.encode(storage, forKey: .storage)
        try container.encode(replicas, forKey: .replicas)
        try container.encode(ifTrue: noAck, forKey: .noAck)
        if duplicateWindow > .zero { try container.encode(duration: duplicateWindow, forKey: .duplicateWindow) }
        try container.encode(ifPresent: placement, forKey: .placement)
        try container.encode(ifPresent: mirror, forKey: .mirror)
        try container.encode(ifPresent: sources, forKey: .sources)
        try container.encode(ifTrue: sealed, forKey: .sealed)
        try container.encode(ifTrue: denyDelete, forKey: .denyDelete)
        try container.encode(ifTrue: denyPurge, forKey: .denyPurge)
        try container.encode(ifTrue: allowRollup, forKey: .allowRollup)
        try container.encode(allowDirect, forKey: .allowDirect)
        try container.encode(mirrorDirect, forKey: .mirrorDirect)
        try container.encode(ifPresent: republish, forKey: .republish)
        try container.encode(ifPresent: compression, forKey: .compression)
        try container.encode(ifPresent: firstSequence, forKey: .firstSequence)
        try container.encode(ifPresent: subjectTransform, forKey: .subjectTransform)
        try container.encode(ifPresent: metadata, forKey: .metadata)
        try container.encode(ifPresent: consumerLimits, forKey: .consumerLimits)
        try container.encode(ifTrue: allowMessageTTL, forKey: .allowMessageTTL)
        if let subjectDeleteMarkerTTL { try container.encode(duration: subjectDeleteMarkerTTL, forKey: .subjectDeleteMarkerTTL) }
    }

    /// The features this configuration uses that need a newer server than `version`, named.
    func featuresMissing(on version: ServerVersion) -> [String] {
        var missing: [String] = []
        if version < ServerVersion(2, 10) {
            if compression != nil { missing.append("compression (2.10)") }
            if firstSequence != nil { missing.append("first sequence (2.10)") }
            if subjectTransform != nil { missing.append("subject transform (2.10)") }
            if metadata != nil { missing.append("metadata (2.10)") }
            if consumerLimits != nil { missing.append("consumer limits (2.10)") }
        }
        if version < ServerVersion(2, 11) {
            if allowMessageTTL { missing.append("per-message TTL (2.11)") }
            if subjectDeleteMarkerTTL != nil { missing.append("subject delete markers (2.11)") }
        }
        return missing
    }
}
