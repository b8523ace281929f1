import JetStream
import Settings

/// The JetStream streams and buckets the service needs, from the settings: [[nats.streams]],
/// [[nats.kv_buckets]] and [[nats.object_stores]] (EVENTS, TASKS; STORAGE; AUDIO, EXPORTS).
public struct NATSTopology: Sendable {
    public var streams: [StreamConfig]
    public var keyValueBuckets: [KeyValueConfig]
    public var objectStores: [ObjectStoreConfig]

    public init(streams: [StreamConfig] = [], keyValueBuckets: [KeyValueConfig] = [], objectStores: [ObjectStoreConfig] = []) {
        self.streams = streams
        self.keyValueBuckets = keyValueBuckets
        self.objectStores = objectStores
    }

    /// The topology the settings describe, each stream and bucket with `replicas` copies (3 on
    /// a 3-node cluster).
    public init(settings: Settings, replicas: Int = 1) {
        streams = settings.nats.streams.map { stream in
            var config = StreamConfig(name: stream.name, subjects: stream.subjects)
            config.retention = RetentionPolicy(rawValue: stream.retention) ?? .limits
            config.storage = StorageType(rawValue: stream.storage) ?? .file
            config.maxAge = .seconds(stream.maxAgeSeconds)
            config.maxBytes = Int64(stream.maxBytes)
            config.replicas = replicas
            // Publishes carry Nats-Msg-Id: two minutes of deduplication, as the servers default.
            config.duplicateWindow = .seconds(120)
            return config
        }
        keyValueBuckets = settings.nats.keyValueBuckets.map { bucket in
            var config = KeyValueConfig(bucket: bucket.name)
            config.history = bucket.history
            config.ttl = .seconds(bucket.ttlSeconds)
            config.maxValueSize = Int32(clamping: bucket.maxValueSize)
            config.replicas = replicas
            return config
        }
        objectStores = settings.nats.objectStores.map { bucket in
            var config = ObjectStoreConfig(bucket: bucket.name)
            config.ttl = .seconds(bucket.ttlSeconds)
            config.maxBytes = Int64(bucket.maxBytes)
            config.replicas = replicas
            return config
        }
    }

    /// Every stream the topology consists of, the buckets' backing streams included, as they are
    /// created on a server of `version`.
    public func streamConfigs(on version: ServerVersion) -> [(kind: TopologyItem.Kind, name: String, config: StreamConfig)] {
        streams.map { (.stream, $0.name, $0) } + keyValueBuckets.map { (.keyValueBucket, $0.bucket, $0.streamConfig(on: version)) }
            + objectStores.map { (.objectStore, $0.bucket, $0.streamConfig(on: version)) }
    }
}

/// One stream or bucket of the topology and what applying it did.
public struct TopologyItem: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case stream, keyValueBucket = "kv", objectStore = "object store"
    }

    public enum Outcome: Sendable, Equatable {
        /// It did not exist and was created.
        case created
        /// It existed with another configuration the server can change: updated.
        case updated
        /// It existed as configured.
        case unchanged
        /// It exists with a configuration the server cannot change (storage, retention …): left
        /// as it is; the differences say what to do by hand.
        case conflict
    }

    public var kind: Kind
    public var name: String
    /// The backing stream.
    public var stream: String
    public var outcome: Outcome
    /// The fields that differ: `field: existing → wanted`.
    public var differences: [String]

    public init(kind: Kind, name: String, stream: String, outcome: Outcome, differences: [String]) {
        self.kind = kind
        self.name = name
        self.stream = stream
        self.outcome = outcome
        self.differences = differences
    }
}

/// The pure part of provisioning: how an existing stream differs from the wanted one, and
/// whether the server can apply the difference as an update.
public enum TopologyPlanner {
    /// A field that differs.
    public struct Difference: Sendable, Equatable, CustomStringConvertible {
        public var field: String
        public var existing: String
        public var wanted: String
        /// Whether nats-server accepts the change as a stream update.
        public var updatable: Bool

        public var description: String { "\(field): \(existing) → \(wanted)\(updatable ? "" : " (cannot be changed in place)")" }
    }

    /// The differences between an existing stream's configuration and the wanted one, over the
    /// fields the topology sets (what the server filled in by itself does not count).
    public static func differences(existing: StreamConfig, wanted: StreamConfig) -> [Difference] {
        var result: [Difference] = []
        func compare<Value: Equatable>(_ field: String, _ existing: Value, _ wanted: Value, updatable: Bool = true) {
            if existing != wanted { result.append(Difference(field: field, existing: "\(existing)", wanted: "\(wanted)", updatable: updatable)) }
        }
        compare("subjects", existing.subjects.sorted(), wanted.subjects.sorted())
        compare("retention", existing.retention.rawValue, wanted.retention.rawValue, updatable: false)
        compare("storage", existing.storage.rawValue, wanted.storage.rawValue, updatable: false)
        compare("max_age", existing.maxAge, wanted.maxAge)
        compare("max_bytes", existing.maxBytes, wanted.maxBytes)
        compare("max_msgs_per_subject", existing.maxMessagesPerSubject, wanted.maxMessagesPerSubject)
        compare("max_msg_size", existing.maxMessageSize, wanted.maxMessageSize)
        compare("discard", existing.discard.rawValue, wanted.discard.rawValue)
        compare("num_replicas", existing.replicas, wanted.replicas)
        // Zero asks for the server's default window (two minutes, or the max age when shorter).
        if wanted.duplicateWindow > .zero { compare("duplicate_window", existing.duplicateWindow, wanted.duplicateWindow) }
        compare("allow_rollup_hdrs", existing.allowRollup, wanted.allowRollup)
        compare("deny_delete", existing.denyDelete, wanted.denyDelete)
        compare("allow_direct", existing.allowDirect, wanted.allowDirect)
        compare("compression", existing.compression ?? .none, wanted.compression ?? .none)
        return result
    }
}

/// Applies a ``NATSTopology`` idempotently: what is missing is created, what differs is updated
/// where the server allows it, and a difference it does not allow is reported, not forced.
public struct TopologyProvisioner: Sendable {
    public let js: JetStreamContext

    public init(js: JetStreamContext) {
        self.js = js
    }

    /// Applies `topology`; returns what happened to each stream and bucket, in order.
    public func apply(_ topology: NATSTopology) async throws(JetStreamError) -> [TopologyItem] {
        var items: [TopologyItem] = []
        for (kind, name, wanted) in topology.streamConfigs(on: js.serverVersion) {
            let existing: StreamInfo?
            do {
                existing = try await js.streamInfo(wanted.name)
            } catch where error.is(.streamNotFound) {
                existing = nil
            }
            guard let existing else {
                try await js.createStream(wanted)
                items.append(TopologyItem(kind: kind, name: name, stream: wanted.name, outcome: .created, differences: []))
                continue
            }
            let differences = TopologyPlanner.differences(existing: existing.config, wanted: wanted)
            if differences.isEmpty {
                items.append(TopologyItem(kind: kind, name: name, stream: wanted.name, outcome: .unchanged, differences: []))
            } else if differences.allSatisfy(\.updatable) {
                try await js.updateStream(wanted)
                items.append(TopologyItem(kind: kind, name: name, stream: wanted.name, outcome: .updated, differences: differences.map(\.description)))
            } else {
                items.append(TopologyItem(kind: kind, name: name, stream: wanted.name, outcome: .conflict, differences: differences.map(\.description)))
            }
        }
        return items
    }
}
