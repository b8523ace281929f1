import Foundation
import NATSProto
import Transport

/// A key-value bucket's configuration (ADR-8): stored as the stream `KV_<bucket>` on the
/// subjects `$KV.<bucket>.>`.
public struct KeyValueConfig: Sendable {
    /// The bucket's name (letters, digits, `-` and `_`).
    public var bucket: String
    public var description: String?
    /// Values kept per key (1 to 64).
    public var history = 1
    /// How long a value lives; 0: forever.
    public var ttl: Duration = .zero
    /// The largest value; -1: the server's max_payload.
    public var maxValueSize: Int32 = -1
    /// The bucket's size bound; -1: unlimited.
    public var maxBytes: Int64 = -1
    public var storage: StorageType = .file
    public var replicas = 1
    /// S2 compression of file storage (nats-server 2.10+).
    public var compression = false
    public var placement: StreamConfig.Placement?
    public var republish: StreamConfig.Republish?

    /// A bucket named `bucket` with the defaults (one value per key, no TTL, file storage).
    public init(bucket: String) {
        self.bucket = bucket
    }

    /// Refuses a configuration ADR-8 does not allow, before anything is sent.
    public static func check(_ config: KeyValueConfig) throws(JetStreamError) {
        try KeyValue.validate(bucket: config.bucket)
        guard (1...64).contains(config.history) else {
            throw JetStreamError(.usage, message: "a bucket keeps 1 to 64 values per key, not \(config.history)")
        }
    }

    /// The backing stream's configuration, as nats.go and nats-py lay it out (direct gets from
    /// nats-server 2.9 on).
    public func streamConfig(on version: ServerVersion) -> StreamConfig {
        var config = StreamConfig(name: KeyValue.streamPrefix + bucket, subjects: ["$KV.\(bucket).>"])
        config.description = description
        config.maxMessagesPerSubject = Int64(history)
        config.maxAge = ttl
        config.maxBytes = maxBytes
        config.maxMessageSize = maxValueSize
        config.storage = storage
        config.replicas = replicas
        config.allowRollup = true
        config.denyDelete = true
        config.discard = .new
        // Deduplication never outlives the values: the window is the TTL when shorter than 2 minutes.
        config.duplicateWindow = ttl > .zero && ttl < .seconds(120) ? ttl : .seconds(120)
        config.maxConsumers = -1
        config.maxMessages = -1
        config.allowDirect = version >= ServerVersion(2, 9)
        config.placement = placement
        config.republish = republish
        if compression { config.compression = .s2 }
        return config
    }
}

/// What an entry records for its key.
public enum KeyValueOperation: String, Sendable {
    /// A value was put.
    case put = "PUT"
    /// The key was deleted (a marker; earlier values stay in the history).
    case delete = "DEL"
    /// The key was purged (a marker that replaced every earlier value).
    case purge = "PURGE"
}

/// One revision of a key.
public struct KeyValueEntry: Sendable, Equatable {
    public var bucket: String
    public var key: String
    /// The value (empty for delete and purge markers).
    public var value: ByteBuffer
    /// The revision: the sequence of this entry in the bucket's stream.
    public var revision: UInt64
    /// When it was stored (RFC 3339 as the server wrote it, or nanoseconds since 1970 for watched entries).
    public var created: String
    /// Entries of the bucket after this one, when known (watch and history).
    public var delta: UInt64
    public var operation: KeyValueOperation

    /// The value as UTF-8 text.
    public var text: String { String(decoding: value.readableBytesView, as: UTF8.self) }
}

/// A bucket's state.
public struct KeyValueStatus: Sendable {
    public var bucket: String
    /// Entries stored (every revision of every key).
    public var values: UInt64
    public var history: Int
    public var ttl: Duration
    public var bytes: UInt64
    /// The backing stream's information.
    public var streamInfo: StreamInfo
}

/// A key-value bucket on JetStream, laid out as ADR-8 says so that nats.go, nats-py and the
/// `nats` CLI read and write the same entries.
public struct KeyValue: Sendable {
    /// Prefix of the backing stream's name.
    public static let streamPrefix = "KV_"
    static let operationHeader = "KV-Operation"

    public let bucket: String
    public let js: JetStreamContext
    /// The backing stream's name.
    public var streamName: String { Self.streamPrefix + bucket }
    /// `$KV.<bucket>.`
    let subjectPrefix: String
    /// Whether gets go through DIRECT.GET (the stream allows it).
    let usesDirectGet: Bool

    init(bucket: String, js: JetStreamContext, usesDirectGet: Bool) {
        self.bucket = bucket
        self.js = js
        self.subjectPrefix = "$KV.\(bucket)."
        self.usesDirectGet = usesDirectGet
    }

    // MARK: - Names

    /// Refuses a bucket name ADR-8 does not allow.
    static func validate(bucket: String) throws(JetStreamError) {
        guard !bucket.isEmpty, bucket.utf8.allSatisfy({ isNameByte($0) }) else {
            throw JetStreamError(.usage, message: "invalid bucket name \"\(bucket)\": use letters, digits, - and _")
        }
    }

    static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    /// Refuses a key ADR-8 does not allow: letters, digits and `-/_=.`, not starting or ending
    /// with `.`; with `wildcards`, `*` and `>` tokens too (for filters).
    static func validate(key: String, wildcards: Bool = false) throws(JetStreamError) {
        let bytes = Array(key.utf8)
        guard let first = bytes.first, let last = bytes.last, first != UInt8(ascii: "."), last != UInt8(ascii: ".") else {
            throw JetStreamError(.usage, message: "invalid key \"\(key)\": a key cannot be empty or start or end with \".\"")
        }
        for byte in bytes {
            let allowed =
                isNameByte(byte) || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: ".")
                || (wildcards && (byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">")))
            guard allowed else {
                throw JetStreamError(
                    .usage, message: "invalid key \"\(key)\": \"\(Character(UnicodeScalar(byte)))\" is not allowed (letters, digits and -/_=.)")
            }
        }
    }

    // MARK: - Writing

    /// Stores `value` under `key`; returns the new revision.
    @discardableResult
    public func put(_ key: String, _ value: some Collection<UInt8> & Sendable) async throws(JetStreamError) -> UInt64 {
        try Self.validate(key: key)
        return try await js.publish(value, to: subjectPrefix + key).sequence
    }

    /// Stores a string's UTF-8 bytes under `key`.
    @discardableResult
    public func put(_ key: String, _ text: String) async throws(JetStreamError) -> UInt64 {
        try await put(key, Array(text.utf8))
    }

    /// Stores `value` only if `key` has no value (never set, or deleted or purged); throws
    /// ``JetStreamError/ErrorCode/wrongLastSequence`` when it has one.
    @discardableResult
    public func create(_ key: String, _ value: some Collection<UInt8> & Sendable) async throws(JetStreamError) -> UInt64 {
        do {
            return try await update(key, value, revision: 0)
        } catch where error.is(.wrongLastSequence) {
            // A delete or purge marker is the last entry: the key is free, replace the marker.
            guard let latest = try await entry(key, includingMarkers: true), latest.operation != .put else { throw error }
            return try await update(key, value, revision: latest.revision)
        }
    }

    /// Stores `value` only if the key's latest revision is `revision` (compare and set; 0: the
    /// key must not exist); throws ``JetStreamError/ErrorCode/wrongLastSequence`` otherwise.
    @discardableResult
    public func update(_ key: String, _ value: some Collection<UInt8> & Sendable, revision: UInt64) async throws(JetStreamError) -> UInt64 {
        try Self.validate(key: key)
        var options = PublishOptions()
        options.expectedLastSubjectSequence = revision
        return try await js.publish(value, to: subjectPrefix + key, options: options).sequence
    }

    /// Deletes `key`: a marker entry (`KV-Operation: DEL`); the history stays. With `revision`,
    /// only if that is the key's latest.
    public func delete(_ key: String, revision: UInt64? = nil) async throws(JetStreamError) {
        try Self.validate(key: key)
        var options = PublishOptions()
        options.expectedLastSubjectSequence = revision
        try await js.publish([UInt8](), to: subjectPrefix + key, headers: [Self.operationHeader: KeyValueOperation.delete.rawValue], options: options)
    }

    /// Purges `key`: a marker (`KV-Operation: PURGE`) that replaces every earlier revision
    /// (`Nats-Rollup: sub`).
    public func purge(_ key: String, revision: UInt64? = nil) async throws(JetStreamError) {
        try Self.validate(key: key)
        var options = PublishOptions()
        options.expectedLastSubjectSequence = revision
        try await js.publish(
            [UInt8](), to: subjectPrefix + key,
            headers: [Self.operationHeader: KeyValueOperation.purge.rawValue, JetStreamHeader.rollup: "sub"], options: options)
    }

    // MARK: - Reading

    /// The key's latest value, or the value at `revision`; nil when the key has none (never
    /// set, deleted or purged, or that revision is not this key's).
    public func get(_ key: String, revision: UInt64? = nil) async throws(JetStreamError) -> KeyValueEntry? {
        guard let found = try await entry(key, revision: revision, includingMarkers: false) else { return nil }
        return found
    }

    /// The entry for `key` (latest or at `revision`), markers included when asked.
    func entry(_ key: String, revision: UInt64? = nil, includingMarkers: Bool) async throws(JetStreamError) -> KeyValueEntry? {
        try Self.validate(key: key)
        let subject = subjectPrefix + key
        let selector: MessageSelector = revision.map { .sequence($0) } ?? .lastBySubject(subject)
        let stored: StoredMessage
        do {
            stored = usesDirectGet ? try await js.directMessage(selector, stream: streamName) : try await js.message(selector, stream: streamName)
        } catch where error.is(.noMessageFound) {
            return nil
        }
        guard stored.subject == subject else { return nil }  // that revision belongs to another key
        let entry = KeyValueEntry(stored, bucket: bucket, key: key)
        if !includingMarkers, entry.operation != .put { return nil }
        return entry
    }

    /// The bucket's state.
    public func status() async throws(JetStreamError) -> KeyValueStatus {
        let info = try await js.streamInfo(streamName)
        return KeyValueStatus(
            bucket: bucket, values: info.state.messages, history: Int(info.config.maxMessagesPerSubject), ttl: info.config.maxAge,
            bytes: info.state.bytes, streamInfo: info)
    }

    /// Every key with a value, or those matching `filter` (wildcards allowed).
    public func keys(matching filter: String = ">") async throws(JetStreamError) -> [String] {
        try Self.validate(key: filter, wildcards: true)
        var consumer = ConsumerConfig(ackPolicy: .none, filterSubject: subjectPrefix + filter)
        consumer.deliverPolicy = .lastPerSubject
        consumer.headersOnly = true
        var keys: [String] = []
        try await scan(consumer) { entry in
            if entry.operation == .put { keys.append(entry.key) }
        }
        return keys
    }

    /// Every stored revision of `key`, oldest first, markers included.
    public func history(_ key: String) async throws(JetStreamError) -> [KeyValueEntry] {
        try Self.validate(key: key)
        var entries: [KeyValueEntry] = []
        try await scan(ConsumerConfig(ackPolicy: .none, filterSubject: subjectPrefix + key)) { entries.append($0) }
        return entries
    }

    /// Reads everything an ephemeral pull consumer with `config` delivers, until none is pending.
    private func scan(_ config: ConsumerConfig, _ visit: (KeyValueEntry) -> Void) async throws(JetStreamError) {
        var config = config
        config.inactiveThreshold = .seconds(30)
        let consumer = try await js.createConsumer(config, stream: streamName)
        defer { Task { [js, streamName] in try? await js.deleteConsumer(consumer.name, stream: streamName) } }
        var pending = consumer.pendingCount
        while pending > 0 {
            let batch = try await js.fetch(consumer: consumer.name, stream: streamName, batch: Int(min(pending, 1000)), expires: js.timeout)
            guard let last = batch.last else { break }
            for message in batch {
                visit(KeyValueEntry(message, bucket: bucket, prefixLength: subjectPrefix.utf8.count))
            }
            pending = last.metadata.pending
        }
    }
}

extension KeyValueEntry {
    init(_ stored: StoredMessage, bucket: String, key: String) {
        self.init(
            bucket: bucket, key: key, value: stored.data, revision: stored.sequence, created: stored.time, delta: 0,
            operation: stored.headers?[KeyValue.operationHeader].flatMap(KeyValueOperation.init(rawValue:)) ?? .put)
    }

    init(_ message: JetStreamMessage, bucket: String, prefixLength: Int) {
        let operation = message.headers?[KeyValue.operationHeader].flatMap(KeyValueOperation.init(rawValue:)) ?? .put
        self.init(
            bucket: bucket, key: String(message.subject.dropFirst(prefixLength)), value: message.payload,
            revision: message.metadata.streamSequence, created: String(message.metadata.timestamp), delta: message.metadata.pending,
            operation: operation)
    }
}

extension JetStreamContext {
    /// Creates a bucket (or returns the existing one with the same configuration).
    public func createKeyValue(_ config: KeyValueConfig) async throws(JetStreamError) -> KeyValue {
        try KeyValueConfig.check(config)
        let info = try await createStream(config.streamConfig(on: serverVersion))
        return KeyValue(bucket: config.bucket, js: self, usesDirectGet: info.config.allowDirect)
    }

    /// Creates the bucket, or updates its configuration when it exists.
    public func createOrUpdateKeyValue(_ config: KeyValueConfig) async throws(JetStreamError) -> KeyValue {
        try KeyValueConfig.check(config)
        let info = try await createOrUpdateStream(config.streamConfig(on: serverVersion))
        return KeyValue(bucket: config.bucket, js: self, usesDirectGet: info.config.allowDirect)
    }

    /// An existing bucket; ``JetStreamError/ErrorCode/streamNotFound`` when there is none.
    public func keyValue(_ bucket: String) async throws(JetStreamError) -> KeyValue {
        try KeyValue.validate(bucket: bucket)
        let info = try await streamInfo(KeyValue.streamPrefix + bucket)
        return KeyValue(bucket: bucket, js: self, usesDirectGet: info.config.allowDirect)
    }

    /// Deletes a bucket and every value in it.
    public func deleteKeyValue(_ bucket: String) async throws(JetStreamError) {
        try KeyValue.validate(bucket: bucket)
        try await deleteStream(KeyValue.streamPrefix + bucket)
    }
}

/// What a watch delivers.
public enum KeyValueWatchEvent: Sendable, Equatable {
    /// A value, a delete or a purge.
    case entry(KeyValueEntry)
    /// Every value the bucket held when the watch started has been delivered; updates follow.
    case initialValuesDone
}

extension KeyValue {
    /// Watches keys matching `keys` (wildcards allowed) through an ordered consumer: first the
    /// latest value of each (every stored revision with `includeHistory`; none with
    /// `updatesOnly`), then ``KeyValueWatchEvent/initialValuesDone``, then every change as it
    /// happens. Deletes and purges are delivered unless `ignoreDeletes`. Ends when the caller
    /// stops iterating.
    public func watch(_ keys: String = ">", includeHistory: Bool = false, ignoreDeletes: Bool = false, updatesOnly: Bool = false)
        async throws(JetStreamError) -> AsyncThrowingStream<KeyValueWatchEvent, any Error>
    {
        try Self.validate(key: keys, wildcards: true)
        var config = OrderedConsumerConfig(filterSubject: subjectPrefix + keys)
        config.deliverPolicy = updatesOnly ? .new : includeHistory ? .all : .lastPerSubject
        let bucket = self.bucket
        let prefixLength = subjectPrefix.utf8.count
        return try await js.watchEvents(stream: streamName, config, caughtUp: .initialValuesDone) { message in
            let entry = KeyValueEntry(message, bucket: bucket, prefixLength: prefixLength)
            return ignoreDeletes && entry.operation != .put ? nil : .entry(entry)
        }
    }
}
