import Foundation
import NATSProto
import Synchronization
import Transport

/// An object-store bucket's configuration (ADR-20): stored as the stream `OBJ_<bucket>` on the
/// subjects `$O.<bucket>.C.>` (chunks) and `$O.<bucket>.M.>` (meta).
public struct ObjectStoreConfig: Sendable {
    /// The bucket's name (letters, digits, `-` and `_`).
    public var bucket: String
    public var description: String?
    /// How long objects live; 0: forever.
    public var ttl: Duration = .zero
    /// -1: unlimited.
    public var maxBytes: Int64 = -1
    public var storage: StorageType = .file
    public var replicas = 1
    /// S2 compression of file storage (nats-server 2.10+).
    public var compression = false
    public var placement: StreamConfig.Placement?

    /// A bucket named `bucket`.
    public init(bucket: String) {
        self.bucket = bucket
    }

    /// The backing stream's configuration, as nats.go and nats-py lay it out (direct gets from
    /// nats-server 2.9 on).
    public func streamConfig(on version: ServerVersion) -> StreamConfig {
        var config = StreamConfig(name: ObjectStore.streamPrefix + bucket, subjects: ["$O.\(bucket).C.>", "$O.\(bucket).M.>"])
        config.description = description
        config.maxAge = ttl
        config.maxBytes = maxBytes
        config.storage = storage
        config.replicas = replicas
        config.discard = .new
        config.allowRollup = true
        config.allowDirect = version >= ServerVersion(2, 9)
        config.placement = placement
        if compression { config.compression = .s2 }
        return config
    }
}

/// An object's description as its meta message holds it, in the JSON nats.go and nats-py write.
public struct ObjectInfo: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    /// Headers, each with its values, as nats.go writes them (`{"Name": ["value"]}`).
    public var headers: [String: [String]]?
    public var metadata: [String: String]?
    public var options: Options?
    public var bucket: String
    /// The id naming the object's chunk subject.
    public var nuid: String
    public var size: UInt64
    /// Modification time, RFC 3339 with nanoseconds.
    public var modified: String
    public var chunks: UInt32
    /// `SHA-256=<base64url>`.
    public var digest: String?
    public var isDeleted: Bool

    /// How the object was stored, or what it links to.
    public struct Options: Codable, Sendable, Equatable {
        /// Set on a link: the object (or the whole bucket) it points to.
        public var link: Link?
        public var maxChunkSize: UInt32?

        public init(link: Link? = nil, maxChunkSize: UInt32? = nil) {
            self.link = link
            self.maxChunkSize = maxChunkSize
        }

        enum CodingKeys: String, CodingKey {
            case link
            case maxChunkSize = "max_chunk_size"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            link = try container.decodeIfPresent(Link.self, forKey: .link)
            maxChunkSize = try container.decodeIfPresent(UInt32.self, forKey: .maxChunkSize)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(ifPresent: link, forKey: .link)
            if let maxChunkSize, maxChunkSize > 0 { try container.encode(maxChunkSize, forKey: .maxChunkSize) }
        }
    }

    /// A link's target: an object of a bucket, or (without a name) the whole bucket.
    public struct Link: Codable, Sendable, Equatable {
        public var bucket: String
        /// nil: the link is to the bucket itself.
        public var name: String?

        public init(bucket: String, name: String? = nil) {
            self.bucket = bucket
            self.name = name
        }

        enum CodingKeys: String, CodingKey { case bucket, name }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            bucket = try container.value(.bucket, or: "")
            let name = try container.decodeIfPresent(String.self, forKey: .name)
            self.name = name?.isEmpty == true ? nil : name
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(bucket, forKey: .bucket)
            if let name, !name.isEmpty { try container.encode(name, forKey: .name) }
        }
    }

    /// What the object links to; nil for an object with contents.
    public var link: Link? { options?.link }

    enum CodingKeys: String, CodingKey {
        case name, description, headers, metadata, options, bucket, nuid, size, chunks, digest
        case modified = "mtime", isDeleted = "deleted"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        description = try container.decodeIfPresent(String.self, forKey: .description)
        headers = try container.decodeIfPresent([String: [String]].self, forKey: .headers)
        metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata)
        options = try container.decodeIfPresent(Options.self, forKey: .options)
        bucket = try container.value(.bucket, or: "")
        nuid = try container.value(.nuid, or: "")
        size = try container.value(.size, or: 0)
        modified = try container.value(.modified, or: "")
        chunks = try container.value(.chunks, or: 0)
        digest = try container.decodeIfPresent(String.self, forKey: .digest)
        isDeleted = try container.value(.isDeleted, or: false)
    }

    init(name: String, bucket: String, nuid: String) {
        self.name = name
        self.bucket = bucket
        self.nuid = nuid
        self.size = 0
        self.modified = ""
        self.chunks = 0
        self.isDeleted = false
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(ifPresent: description, forKey: .description)
        if let headers, !headers.isEmpty { try container.encode(headers, forKey: .headers) }
        if let metadata, !metadata.isEmpty { try container.encode(metadata, forKey: .metadata) }
        try container.encode(ifPresent: options, forKey: .options)
        try container.encode(bucket, forKey: .bucket)
        try container.encode(nuid, forKey: .nuid)
        try container.encode(size, forKey: .size)
        try container.encode(modified, forKey: .modified)
        try container.encode(chunks, forKey: .chunks)
        if let digest, !digest.isEmpty { try container.encode(digest, forKey: .digest) }
        try container.encode(ifTrue: isDeleted, forKey: .isDeleted)
    }
}

/// An object-store bucket on JetStream, laid out as ADR-20 says so that nats.go and nats-py
/// read what it writes and the other way round. Objects are streamed in chunks both ways: a
/// large one is never held whole in memory.
public struct ObjectStore: Sendable {
    /// Prefix of the backing stream's name.
    public static let streamPrefix = "OBJ_"
    /// Chunks are 128 KiB unless the caller says otherwise.
    public static let defaultChunkSize = 128 * 1024
    /// Chunk publishes awaiting their acks at most, per put.
    static let ackWindow = 32

    public let bucket: String
    public let js: JetStreamContext
    /// The backing stream's name.
    public var streamName: String { Self.streamPrefix + bucket }

    /// `$O.<bucket>.C.<nuid>`.
    func chunkSubject(_ nuid: String) -> String { "$O.\(bucket).C.\(nuid)" }
    /// `$O.<bucket>.M.<base64url(name)>`, padded, as nats.go and nats-py encode it.
    func metaSubject(_ name: String) -> String { "$O.\(bucket).M.\(Base64.encodeURLSafe(name.utf8, padded: true))" }

    /// `SHA-256=<base64url>`, padded, the digest field's form.
    static func digestField(_ sha256: [UInt8]) -> String { "SHA-256=" + Base64.encodeURLSafe(sha256, padded: true) }

    /// The time as nats.go writes `mtime`: RFC 3339 in UTC with nanoseconds.
    static func timestamp(_ date: Date = Date()) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let nanoseconds = Int((date.timeIntervalSince1970 - seconds) * 1e9)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        let base = formatter.string(from: Date(timeIntervalSince1970: seconds))
        return String(base.dropLast()) + "." + String(format: "%09d", nanoseconds) + "Z"
    }

    static func validate(name: String) throws(JetStreamError) {
        guard !name.isEmpty else { throw JetStreamError(.usage, message: "an object needs a name") }
    }

    // MARK: - Writing

    /// Stores an object from `chunks` (any sizes; they are cut to `chunkSize` pieces), streaming:
    /// at most `ackWindow` chunks await their acks, so memory does not grow with the object.
    /// The meta message (with `Nats-Rollup: sub`) is published last; an object of the same name
    /// is replaced, its chunks purged once the new one is complete. On failure the chunks
    /// already stored are purged.
    @discardableResult
    public func put<Chunks: AsyncSequence & Sendable>(
        _ name: String, chunks: Chunks, description: String? = nil, headers: [String: [String]]? = nil,
        chunkSize: Int = ObjectStore.defaultChunkSize
    ) async throws(JetStreamError) -> ObjectInfo where Chunks.Element == [UInt8] {
        try Self.validate(name: name)
        guard chunkSize > 0 else { throw JetStreamError(.usage, message: "the chunk size must be positive, not \(chunkSize)") }
        let previous = try await info(name, includingDeleted: true)
        var nuid = NUID()
        var object = ObjectInfo(name: name, bucket: bucket, nuid: nuid.next())
        object.description = description
        object.headers = headers
        object.options = ObjectInfo.Options(maxChunkSize: UInt32(clamping: chunkSize))
        let subject = chunkSubject(object.nuid)
        guard var hasher = SHA256Hasher() else { throw JetStreamError(.connection, message: "libcrypto could not start a SHA-256") }
        // Chunks are published in order from this task (their order in the stream is the
        // object's); their acks come back to an inbox of our own, at most `ackWindow` awaited.
        let acks: NATSSubscription
        do { acks = try await js.client.subscribe(to: js.client.newInbox()) } catch { throw JetStreamError.from(error, doing: "storing \(name)") }
        defer { Task { try? await acks.unsubscribe() } }
        do {
            var tracker = AckTracker(subscription: acks, timeout: js.timeout, operation: "storing \(name)")
            var pending: [UInt8] = []
            pending.reserveCapacity(chunkSize)
            func send(_ chunk: ArraySlice<UInt8>) async throws {
                if tracker.outstanding >= Self.ackWindow { try await tracker.awaitOne() }
                do {
                    try await js.client.publish(chunk, to: subject, replyTo: acks.subject)
                } catch {
                    throw JetStreamError.from(error, doing: "storing \(name)")
                }
                tracker.outstanding += 1
                object.chunks += 1
                object.size += UInt64(chunk.count)
            }
            for try await piece in chunks {
                var offset = 0
                while offset < piece.count {
                    // Whole chunks of the piece go out as they are; only what straddles two
                    // pieces is gathered in `pending`.
                    if pending.isEmpty, piece.count - offset >= chunkSize {
                        let chunk = piece[offset..<(offset + chunkSize)]
                        chunk.withUnsafeBytes { hasher.update($0) }
                        try await send(chunk)
                        offset += chunkSize
                        continue
                    }
                    let take = Swift.min(chunkSize - pending.count, piece.count - offset)
                    pending.append(contentsOf: piece[offset..<(offset + take)])
                    offset += take
                    if pending.count == chunkSize {
                        pending.withUnsafeBytes { hasher.update($0) }
                        try await send(pending[...])
                        pending.removeAll(keepingCapacity: true)
                    }
                }
            }
            if !pending.isEmpty {
                pending.withUnsafeBytes { hasher.update($0) }
                try await send(pending[...])
            }
            while tracker.outstanding > 0 { try await tracker.awaitOne() }
        } catch {
            _ = try? await js.purgeStream(streamName, PurgeRequest(filter: subject))
            if let error = error as? JetStreamError { throw error }
            throw JetStreamError(.connection, message: "storing \(name): \(error)")
        }
        object.digest = Self.digestField(hasher.finalize())
        object.modified = Self.timestamp()
        do {
            try await publishMeta(object)
        } catch {
            _ = try? await js.purgeStream(streamName, PurgeRequest(filter: subject))
            throw error
        }
        if let previous, previous.nuid != object.nuid {
            _ = try? await js.purgeStream(streamName, PurgeRequest(filter: chunkSubject(previous.nuid)))
        }
        return object
    }

    /// Stores `data` as an object.
    @discardableResult
    public func put(_ name: String, data: Data, description: String? = nil, chunkSize: Int = ObjectStore.defaultChunkSize)
        async throws(JetStreamError) -> ObjectInfo
    {
        try await put(name, chunks: DataChunks(data: data, size: chunkSize), description: description, chunkSize: chunkSize)
    }

    /// Stores a file's contents, read in `chunkSize` pieces.
    @discardableResult
    public func put(_ name: String, fileAt path: String, description: String? = nil, chunkSize: Int = ObjectStore.defaultChunkSize)
        async throws(JetStreamError) -> ObjectInfo
    {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw JetStreamError(.usage, message: "cannot open \(path) to store it as \(name)")
        }
        defer { try? handle.close() }
        return try await put(name, chunks: FileChunks(handle: handle, size: chunkSize), description: description, chunkSize: chunkSize)
    }

    func publishMeta(_ object: ObjectInfo) async throws(JetStreamError) {
        let json: Data
        do { json = try JetStreamJSON.encode(object) } catch { throw JetStreamError(.usage, message: "the meta of \(object.name): \(error)") }
        try await js.publish(Array(json), to: metaSubject(object.name), headers: [JetStreamHeader.rollup: "sub"])
    }

    /// Deletes an object: its meta becomes a tombstone (`deleted`), its chunks are purged.
    public func delete(_ name: String) async throws(JetStreamError) {
        guard var object = try await info(name) else {
            throw JetStreamError(.api, code: 404, errorCode: JetStreamError.ErrorCode.noMessageFound.rawValue, message: "no object \(name) in \(bucket)")
        }
        let chunks = chunkSubject(object.nuid)
        object.isDeleted = true
        object.size = 0
        object.chunks = 0
        object.digest = nil
        object.modified = Self.timestamp()
        try await publishMeta(object)
        try await js.purgeStream(streamName, PurgeRequest(filter: chunks))
    }

    // MARK: - Reading

    /// An object's meta; nil when there is none (or it was deleted, unless `includingDeleted`).
    public func info(_ name: String, includingDeleted: Bool = false) async throws(JetStreamError) -> ObjectInfo? {
        try Self.validate(name: name)
        let stored: StoredMessage
        do {
            stored = try await js.directMessage(.lastBySubject(metaSubject(name)), stream: streamName)
        } catch where error.is(.noMessageFound) {
            return nil
        }
        var object: ObjectInfo
        do {
            object = try JetStreamJSON.decode(ObjectInfo.self, from: Data(stored.data.readableBytesView))
        } catch {
            throw JetStreamError(.decoding, message: "the meta of \(name) in \(bucket): \(JetStreamContext.describe(error))")
        }
        // As nats.go: the modification time is when the meta was stored.
        if !stored.time.isEmpty { object.modified = stored.time }
        return object.isDeleted && !includingDeleted ? nil : object
    }

    /// Every object's meta (deleted ones too when asked), through a consumer of the meta subjects.
    public func list(includingDeleted: Bool = false) async throws(JetStreamError) -> [ObjectInfo] {
        var consumer = ConsumerConfig(ackPolicy: .none, filterSubject: "$O.\(bucket).M.>")
        consumer.deliverPolicy = .lastPerSubject
        consumer.inactiveThreshold = .seconds(30)
        let created = try await js.createConsumer(consumer, stream: streamName)
        defer { Task { [js, streamName] in try? await js.deleteConsumer(created.name, stream: streamName) } }
        var objects: [ObjectInfo] = []
        var pending = created.pendingCount
        while pending > 0 {
            let batch = try await js.fetch(consumer: created.name, stream: streamName, batch: Int(min(pending, 500)), expires: js.timeout)
            guard let last = batch.last else { break }
            for message in batch {
                guard let object = try? JetStreamJSON.decode(ObjectInfo.self, from: Data(message.payload.readableBytesView)) else { continue }
                if includingDeleted || !object.isDeleted { objects.append(object) }
            }
            pending = last.metadata.pending
        }
        return objects
    }

    /// The object's bytes chunk by chunk, fetched as they are read; the digest and size are
    /// checked after the last chunk (a mismatch or a missing chunk ends the sequence with an
    /// error). Nil when there is no such object.
    /// A link is followed to the object it names (in this bucket or another); a link to a
    /// whole bucket cannot be read and throws ``JetStreamError/Kind/usage``.
    public func get(_ name: String) async throws(JetStreamError) -> ObjectReader? {
        guard let object = try await info(name) else { return nil }
        guard let link = object.link else { return ObjectReader(store: self, object: object) }
        guard let target = link.name else {
            throw JetStreamError(.usage, message: "\(name) in \(bucket) is a link to the bucket \(link.bucket), not to an object")
        }
        let store = link.bucket == bucket ? self : try await js.objectStore(link.bucket)
        guard let linked = try await store.info(target) else { return nil }
        guard linked.link == nil else {
            throw JetStreamError(.decoding, message: "\(name) in \(bucket) links to \(target) in \(link.bucket), which is a link itself")
        }
        return ObjectReader(store: store, object: linked)
    }

    /// Writes the object to `path` as it arrives; the file is removed when the object is
    /// incomplete or its digest does not match. Returns its meta, nil when there is no object.
    @discardableResult
    public func get(_ name: String, toFile path: String) async throws(JetStreamError) -> ObjectInfo? {
        guard let reader = try await get(name) else { return nil }
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw JetStreamError(.usage, message: "cannot create \(path)")
        }
        do {
            for try await chunk in reader {
                // The chunk's bytes are written where they are, not copied into a Data first.
                try chunk.withUnsafeReadableBytes { bytes in
                    guard let base = bytes.baseAddress else { return }
                    try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count, deallocator: .none))
                }
            }
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: path)
            if let error = error as? JetStreamError { throw error }
            throw JetStreamError(.connection, message: "reading \(name) into \(path): \(error)")
        }
        return reader.object
    }
}

/// An object's chunks, fetched from its stream as the sequence is read, its digest checked at the end.
public struct ObjectReader: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    let store: ObjectStore
    /// The object's meta.
    public let object: ObjectInfo

    public func makeAsyncIterator() -> Iterator { Iterator(store: store, object: object) }

    /// Reads the chunks in batches from an ephemeral consumer of the object's chunk subject.
    public struct Iterator: AsyncIteratorProtocol {
        let store: ObjectStore
        let object: ObjectInfo
        var consumer: String?
        var buffered: [ByteBuffer] = []
        /// The next of `buffered` to hand out.
        var handedOut = 0
        var received: UInt32 = 0
        var size: UInt64 = 0
        var hasher = Digest()
        var finished = false

        /// Holds the noncopyable hasher for the iterator (which must be copyable).
        final class Digest: @unchecked Sendable {
            // Safe: an iterator, and with it this hasher, is used by one task at a time.
            var hasher = SHA256Hasher()
        }

        init(store: ObjectStore, object: ObjectInfo) {
            self.store = store
            self.object = object
        }

        public mutating func next() async throws -> ByteBuffer? {
            if handedOut < buffered.count {
                handedOut += 1
                return buffered[handedOut - 1]
            }
            buffered.removeAll(keepingCapacity: true)
            handedOut = 0
            if finished { return nil }
            if received == object.chunks {
                finished = true
                try verify()
                return nil
            }
            let js = store.js
            if consumer == nil {
                var config = ConsumerConfig(ackPolicy: .none, filterSubject: store.chunkSubject(object.nuid))
                config.memoryStorage = true
                config.inactiveThreshold = .seconds(30)
                consumer = try await js.createConsumer(config, stream: store.streamName).name
            }
            guard let consumer else { return nil }
            let wanted = Int(Swift.min(UInt32(64), object.chunks - received))
            let batch = try await js.fetch(consumer: consumer, stream: store.streamName, batch: wanted, expires: js.timeout)
            guard !batch.isEmpty else {
                finished = true
                throw JetStreamError(.decoding, message: "object \(object.name): chunk \(received + 1) of \(object.chunks) is missing")
            }
            for message in batch {
                received += 1
                size += UInt64(message.payload.readableBytes)
                guard size <= object.size else {
                    finished = true
                    throw JetStreamError(.decoding, message: "object \(object.name): the chunks hold more than the \(object.size) bytes its meta announces")
                }
                message.payload.withUnsafeReadableBytes { hasher.hasher?.update($0) }
                buffered.append(message.payload)
            }
            if received == object.chunks { Task { [js, consumer, stream = store.streamName] in try? await js.deleteConsumer(consumer, stream: stream) } }
            handedOut = 1
            return buffered[0]
        }

        private mutating func verify() throws {
            guard size == object.size else {
                throw JetStreamError(.decoding, message: "object \(object.name): \(size) bytes arrived, its meta announces \(object.size)")
            }
            guard let hasher = hasher.hasher.take() else { return }
            let digest = ObjectStore.digestField(hasher.finalize())
            guard let expected = object.digest, expected == digest else {
                throw JetStreamError(.decoding, message: "object \(object.name): digest \(digest) does not match the meta's \(object.digest ?? "(none)")")
            }
        }
    }
}

/// Waits for the acks of chunks published to a stream with an inbox of their own as reply subject.
struct AckTracker {
    let subscription: NATSSubscription
    let timeout: Duration
    let operation: String
    var iterator: NATSSubscription.AsyncIterator
    /// Chunks published whose ack has not come yet.
    var outstanding = 0

    init(subscription: NATSSubscription, timeout: Duration, operation: String) {
        self.subscription = subscription
        self.timeout = timeout
        self.operation = operation
        self.iterator = subscription.makeAsyncIterator()
    }

    /// Waits for the next ack; a refusal, a missing stream or silence past the timeout throws.
    mutating func awaitOne() async throws {
        let subscription = self.subscription
        let timeout = self.timeout
        // Past the timeout the subscription is ended, which ends the wait below.
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            try? await subscription.unsubscribe()
        }
        defer { watchdog.cancel() }
        guard let reply = try await iterator.next() else {
            throw JetStreamError(.timedOut, message: "\(operation): no ack for a chunk within \(timeout)")
        }
        if reply.status == 503 {
            throw JetStreamError(.noResponders, code: 503, message: "\(operation): the object's stream has no leader")
        }
        _ = try JetStreamContext.decodePubAck(reply, operation: operation)
        outstanding -= 1
    }
}

/// `Data` cut into chunks.
struct DataChunks: AsyncSequence, Sendable {
    let data: Data
    let size: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let data: Data
        let size: Int
        var offset = 0

        mutating func next() async -> [UInt8]? {
            guard offset < data.count else { return nil }
            let end = Swift.min(offset + size, data.count)
            defer { offset = end }
            return [UInt8](data[(data.startIndex + offset)..<(data.startIndex + end)])
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(data: data, size: size) }
}

/// A file read in chunks.
struct FileChunks: AsyncSequence, @unchecked Sendable {
    // Safe: the handle is read by the one task that iterates, and closed by its owner after.
    let handle: FileHandle
    let size: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle
        let size: Int

        mutating func next() async throws -> [UInt8]? {
            guard let data = try handle.read(upToCount: size), !data.isEmpty else { return nil }
            return [UInt8](data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: handle, size: size) }
}

extension JetStreamContext {
    /// Creates an object-store bucket (or returns the existing one with the same configuration).
    public func createObjectStore(_ config: ObjectStoreConfig) async throws(JetStreamError) -> ObjectStore {
        try KeyValue.validate(bucket: config.bucket)
        try await createStream(config.streamConfig(on: serverVersion))
        return ObjectStore(bucket: config.bucket, js: self)
    }

    /// An existing bucket; ``JetStreamError/ErrorCode/streamNotFound`` when there is none.
    public func objectStore(_ bucket: String) async throws(JetStreamError) -> ObjectStore {
        try KeyValue.validate(bucket: bucket)
        _ = try await streamInfo(ObjectStore.streamPrefix + bucket)
        return ObjectStore(bucket: bucket, js: self)
    }

    /// Deletes a bucket and every object in it.
    public func deleteObjectStore(_ bucket: String) async throws(JetStreamError) {
        try KeyValue.validate(bucket: bucket)
        try await deleteStream(ObjectStore.streamPrefix + bucket)
    }
}
