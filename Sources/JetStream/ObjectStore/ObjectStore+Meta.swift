import Foundation
import NATSProto
import Transport

/// The parts of an object's meta a caller may change after it is stored.
public struct ObjectMeta: Sendable, Equatable {
    /// The name; a different one renames the object.
    public var name: String
    public var description: String?
    public var headers: [String: [String]]?
    public var metadata: [String: String]?

    public init(name: String, description: String? = nil, headers: [String: [String]]? = nil, metadata: [String: String]? = nil) {
        self.name = name
        self.description = description
        self.headers = headers
        self.metadata = metadata
    }
}

/// A bucket's configuration and usage.
public struct ObjectStoreStatus: Sendable {
    public var bucket: String
    public var description: String?
    /// How long objects live; 0: forever.
    public var ttl: Duration
    public var storage: StorageType
    public var replicas: Int
    /// No object can be stored, changed or deleted any more.
    public var isSealed: Bool
    /// Bytes the bucket's stream holds (chunks and metas).
    public var size: UInt64
    public var isCompressed: Bool
    /// The backing stream's information.
    public var streamInfo: StreamInfo
}

/// What an object-store watch delivers.
public enum ObjectWatchEvent: Sendable, Equatable {
    /// An object was stored, changed, linked or deleted (``ObjectInfo/isDeleted``).
    case object(ObjectInfo)
    /// Every object the bucket held when the watch started has been delivered; changes follow.
    case initialObjectsDone
}

extension ObjectStore {
    /// The bucket's configuration and usage, from its stream.
    public func status() async throws(JetStreamError) -> ObjectStoreStatus {
        let info = try await js.streamInfo(streamName)
        return ObjectStoreStatus(
            bucket: bucket, description: info.config.description, ttl: info.config.maxAge, storage: info.config.storage,
            replicas: info.config.replicas, isSealed: info.config.sealed, size: info.state.bytes,
            isCompressed: info.config.compression.map { $0 != .none } ?? false, streamInfo: info)
    }

    /// Seals the bucket: from now on nothing in it can be stored, changed or deleted.
    public func seal() async throws(JetStreamError) {
        var config = try await js.streamInfo(streamName).config
        config.sealed = true
        try await js.updateStream(config)
    }

    /// Changes an object's name, description, headers or metadata; its contents stay. A rename
    /// to a name another (not deleted) object has is refused; the old name's meta is purged.
    @discardableResult
    public func updateMeta(_ name: String, _ meta: ObjectMeta) async throws(JetStreamError) -> ObjectInfo {
        try Self.validate(name: meta.name)
        guard var object = try await info(name) else {
            throw JetStreamError(.usage, message: "cannot update the meta of \(name) in \(bucket): there is no such object, or it was deleted")
        }
        if meta.name != name, let existing = try await info(meta.name), !existing.isDeleted {
            throw JetStreamError(.usage, message: "cannot rename \(name) to \(meta.name) in \(bucket): an object of that name exists")
        }
        object.name = meta.name
        object.description = meta.description
        object.headers = meta.headers
        object.metadata = meta.metadata
        object.modified = Self.timestamp()
        try await publishMeta(object)
        if meta.name != name {
            try await js.purgeStream(streamName, PurgeRequest(filter: metaSubject(name)))
        }
        return object
    }

    /// Stores `name` as a link to `target` (an object of this bucket or another), which must
    /// exist and not be a link itself. An existing link of that name is replaced; an object is not.
    @discardableResult
    public func addLink(_ name: String, to target: ObjectInfo) async throws(JetStreamError) -> ObjectInfo {
        guard !target.isDeleted else {
            throw JetStreamError(.usage, message: "cannot link \(name) to \(target.name) in \(target.bucket): that object was deleted")
        }
        guard target.link == nil else {
            throw JetStreamError(.usage, message: "cannot link \(name) to \(target.name) in \(target.bucket): that is a link itself")
        }
        return try await putLink(name, ObjectInfo.Link(bucket: target.bucket, name: target.name))
    }

    /// Stores `name` as a link to the whole bucket `target`.
    @discardableResult
    public func addBucketLink(_ name: String, to target: ObjectStore) async throws(JetStreamError) -> ObjectInfo {
        try await putLink(name, ObjectInfo.Link(bucket: target.bucket))
    }

    private func putLink(_ name: String, _ link: ObjectInfo.Link) async throws(JetStreamError) -> ObjectInfo {
        try Self.validate(name: name)
        if let existing = try await info(name, includingDeleted: true), existing.link == nil, !existing.isDeleted {
            throw JetStreamError(.usage, message: "cannot store the link \(name) in \(bucket): an object of that name exists")
        }
        var nuid = NUID()
        var object = ObjectInfo(name: name, bucket: bucket, nuid: nuid.next())
        object.options = ObjectInfo.Options(link: link)
        object.modified = Self.timestamp()
        try await publishMeta(object)
        return object
    }

    /// Watches the bucket's metas through an ordered consumer: first each object's current meta
    /// (every stored one with `includeHistory`; none with `updatesOnly`), then
    /// ``ObjectWatchEvent/initialObjectsDone``, then every change. Deleted objects are delivered
    /// (as tombstones) unless `ignoreDeletes`. A meta that cannot be decoded ends the watch with
    /// an error. Ends when the caller stops iterating.
    public func watch(includeHistory: Bool = false, ignoreDeletes: Bool = false, updatesOnly: Bool = false)
        async throws(JetStreamError) -> AsyncThrowingStream<ObjectWatchEvent, any Error>
    {
        var config = OrderedConsumerConfig(filterSubject: "$O.\(bucket).M.>")
        config.deliverPolicy = updatesOnly ? .new : includeHistory ? .all : .lastPerSubject
        let bucket = self.bucket
        return try await js.watchEvents(stream: streamName, config, caughtUp: .initialObjectsDone) { message in
            let object: ObjectInfo
            do {
                object = try JetStreamJSON.decode(ObjectInfo.self, from: Data(message.payload.readableBytesView))
            } catch {
                throw JetStreamError(.decoding, message: "a meta on \(message.subject) in \(bucket): \(JetStreamContext.describe(error))")
            }
            return ignoreDeletes && object.isDeleted ? nil : .object(object)
        }
    }
}

extension JetStreamContext {
    /// The names of the account's object-store buckets.
    public func objectStoreNames() async throws(JetStreamError) -> [String] {
        let prefix = ObjectStore.streamPrefix
        return try await streamNames(subject: "$O.*.M.>").filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// The status of every object-store bucket of the account.
    public func objectStoreStatuses() async throws(JetStreamError) -> [ObjectStoreStatus] {
        var statuses: [ObjectStoreStatus] = []
        for bucket in try await objectStoreNames() {
            do {
                statuses.append(try await ObjectStore(bucket: bucket, js: self).status())
            } catch where error.is(.streamNotFound) {
                continue  // deleted since it was listed
            }
        }
        return statuses
    }
}
