import Foundation
import NATSProto
import Transport

/// A message as a stream stored it.
public struct StoredMessage: Sendable, Equatable {
    /// The subject it was published to.
    public var subject: String
    /// Its sequence in the stream.
    public var sequence: UInt64
    /// Its headers, if it had any.
    public var headers: NATSHeaders?
    /// Its payload.
    public var data: ByteBuffer
    /// When it was stored (RFC 3339, as the server wrote it).
    public var time: String
}

/// How much of a stream a purge removes.
public struct PurgeRequest: Encodable, Sendable {
    /// Only messages on this subject (wildcards allowed).
    public var filter: String?
    /// Messages below this sequence.
    public var upToSequence: UInt64?
    /// Keep this many of the newest.
    public var keep: UInt64?

    public init(filter: String? = nil, upToSequence: UInt64? = nil, keep: UInt64? = nil) {
        self.filter = filter
        self.upToSequence = upToSequence
        self.keep = keep
    }

    enum CodingKeys: String, CodingKey {
        case filter, upToSequence = "seq", keep
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ifPresent: filter, forKey: .filter)
        try container.encode(ifPresent: upToSequence, forKey: .upToSequence)
        try container.encode(ifPresent: keep, forKey: .keep)
    }
}

/// Which stored message a get asks for.
public enum MessageSelector: Sendable, Equatable {
    /// The message with this sequence.
    case sequence(UInt64)
    /// The newest message on this subject.
    case lastBySubject(String)
    /// The first message at or after `sequence` on `subject` (wildcards allowed).
    case nextBySubject(String, from: UInt64)
}

struct MessageGetRequest: Encodable {
    var selector: MessageSelector

    enum CodingKeys: String, CodingKey {
        case sequence = "seq", lastBySubject = "last_by_subj", nextBySubject = "next_by_subj"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch selector {
        case .sequence(let sequence): try container.encode(sequence, forKey: .sequence)
        case .lastBySubject(let subject): try container.encode(subject, forKey: .lastBySubject)
        case .nextBySubject(let subject, let sequence):
            try container.encode(subject, forKey: .nextBySubject)
            try container.encode(sequence, forKey: .sequence)
        }
    }
}

struct StreamInfoRequest: Encodable {
    var deletedDetails: Bool
    var subjectsFilter: String?
    var offset: Int?

    enum CodingKeys: String, CodingKey {
        case deletedDetails = "deleted_details", subjectsFilter = "subjects_filter", offset
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ifTrue: deletedDetails, forKey: .deletedDetails)
        try container.encode(ifPresent: subjectsFilter, forKey: .subjectsFilter)
        try container.encode(ifPresent: offset, forKey: .offset)
    }
}

struct PagedRequest: Encodable {
    var offset: Int
    var subject: String?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(offset, forKey: .offset)
        try container.encode(ifPresent: subject, forKey: .subject)
    }

    enum CodingKeys: String, CodingKey { case offset, subject }
}

/// One page of a paged listing: the total, and this page's items.
protocol APIPage: Decodable {
    associatedtype Item
    var total: Int { get }
    var items: [Item] { get }
}

struct StreamNamesPage: APIPage {
    var total: Int
    var streams: [String]?
    var items: [String] { streams ?? [] }
}

struct StreamListPage: APIPage {
    var total: Int
    var streams: [StreamInfo]?
    var items: [StreamInfo] { streams ?? [] }
}

struct SuccessResponse: Decodable {
    var success: Bool
    var purged: UInt64?
}

struct StoredMessageResponse: Decodable {
    struct Message: Decodable {
        var subject: String
        var seq: UInt64
        var hdrs: String?
        var data: String?
        var time: String
    }

    var message: Message
}

struct MessageDeleteRequest: Encodable {
    var seq: UInt64
    var no_erase: Bool?
}

extension JetStreamContext {
    // MARK: - Streams

    /// Creates a stream (`STREAM.CREATE`). An existing stream with the same configuration is
    /// returned as it is; one with another configuration is ``JetStreamError/ErrorCode/streamNameInUse``.
    @discardableResult
    public func createStream(_ config: StreamConfig) async throws(JetStreamError) -> StreamInfo {
        try JetStreamName.validate(config.name, as: "stream")
        try require(config.featuresMissing(on: serverVersion), for: "stream \(config.name)")
        return try await request("STREAM.CREATE.\(config.name)", body: config, as: StreamInfo.self)
    }

    /// Changes a stream's configuration (`STREAM.UPDATE`).
    @discardableResult
    public func updateStream(_ config: StreamConfig) async throws(JetStreamError) -> StreamInfo {
        try JetStreamName.validate(config.name, as: "stream")
        try require(config.featuresMissing(on: serverVersion), for: "stream \(config.name)")
        return try await request("STREAM.UPDATE.\(config.name)", body: config, as: StreamInfo.self)
    }

    /// Creates the stream, or updates it when it exists with another configuration.
    @discardableResult
    public func createOrUpdateStream(_ config: StreamConfig) async throws(JetStreamError) -> StreamInfo {
        do {
            return try await createStream(config)
        } catch where error.is(.streamNameInUse) {
            return try await updateStream(config)
        }
    }

    /// A stream's configuration and state (`STREAM.INFO`); `deletedDetails` lists the deleted
    /// sequences, `subjectsFilter` counts messages per subject matching it (every page of them).
    public func streamInfo(_ name: String, deletedDetails: Bool = false, subjectsFilter: String? = nil) async throws(JetStreamError)
        -> StreamInfo
    {
        try JetStreamName.validate(name, as: "stream")
        var info = try await request(
            "STREAM.INFO.\(name)", body: StreamInfoRequest(deletedDetails: deletedDetails, subjectsFilter: subjectsFilter), as: StreamInfo.self)
        guard subjectsFilter != nil else { return info }
        // The server pages subject counts: ask for the rest until they are all in.
        var subjects = info.state.subjects ?? [:]
        while subjects.count < info.state.subjectCount {
            let page = try await request(
                "STREAM.INFO.\(name)",
                body: StreamInfoRequest(deletedDetails: false, subjectsFilter: subjectsFilter, offset: subjects.count), as: StreamInfo.self)
            guard let more = page.state.subjects, !more.isEmpty else { break }
            subjects.merge(more) { first, _ in first }
        }
        info.state.subjects = subjects
        return info
    }

    /// Deletes a stream and its messages (`STREAM.DELETE`).
    public func deleteStream(_ name: String) async throws(JetStreamError) {
        try JetStreamName.validate(name, as: "stream")
        _ = try await request("STREAM.DELETE.\(name)", as: SuccessResponse.self)
    }

    /// The names of every stream, or of those storing `subject` (`STREAM.NAMES`, all pages).
    public func streamNames(subject: String? = nil) async throws(JetStreamError) -> [String] {
        try await allPages("STREAM.NAMES", subject: subject, as: StreamNamesPage.self)
    }

    /// Every stream's information, or those storing `subject` (`STREAM.LIST`, all pages).
    public func streams(subject: String? = nil) async throws(JetStreamError) -> [StreamInfo] {
        try await allPages("STREAM.LIST", subject: subject, as: StreamListPage.self)
    }

    /// Every item of a paged listing, asking for the next page from the count received so far.
    func allPages<Page: APIPage>(_ operation: String, subject: String? = nil, as type: Page.Type) async throws(JetStreamError) -> [Page.Item] {
        var items: [Page.Item] = []
        while true {
            let page = try await request(operation, body: PagedRequest(offset: items.count, subject: subject), as: Page.self)
            items += page.items
            if page.items.isEmpty || items.count >= page.total { return items }
        }
    }

    /// Removes messages from a stream (`STREAM.PURGE`); returns how many.
    @discardableResult
    public func purgeStream(_ name: String, _ purge: PurgeRequest = PurgeRequest()) async throws(JetStreamError) -> UInt64 {
        try JetStreamName.validate(name, as: "stream")
        return try await request("STREAM.PURGE.\(name)", body: purge, as: SuccessResponse.self).purged ?? 0
    }

    // MARK: - Messages

    /// A stored message (`STREAM.MSG.GET`, answered by the stream's leader).
    public func message(_ selector: MessageSelector, stream: String) async throws(JetStreamError) -> StoredMessage {
        try JetStreamName.validate(stream, as: "stream")
        let operation = "STREAM.MSG.GET.\(stream)"
        let stored = try await request(operation, body: MessageGetRequest(selector: selector), as: StoredMessageResponse.self).message
        var headers: NATSHeaders?
        if let encoded = stored.hdrs, !encoded.isEmpty {
            guard let bytes = Data(base64Encoded: encoded) else {
                throw JetStreamError(.decoding, message: "\(operation): the headers of message \(stored.seq) are not base64")
            }
            do throws(NATSProtocolError) {
                headers = try NATSHeaders(parsing: ByteBuffer(bytes: bytes))
            } catch {
                throw JetStreamError(.decoding, message: "\(operation): the headers of message \(stored.seq): \(error)")
            }
        }
        guard let data = stored.data.map({ Data(base64Encoded: $0) }) ?? Data() else {
            throw JetStreamError(.decoding, message: "\(operation): the data of message \(stored.seq) is not base64")
        }
        return StoredMessage(subject: stored.subject, sequence: stored.seq, headers: headers, data: ByteBuffer(bytes: data), time: stored.time)
    }

    /// A stored message through `DIRECT.GET`, which any replica answers (the stream must allow
    /// direct gets). `.lastBySubject` uses the subject form (`DIRECT.GET.<stream>.<subject>`).
    public func directMessage(_ selector: MessageSelector, stream: String) async throws(JetStreamError) -> StoredMessage {
        try JetStreamName.validate(stream, as: "stream")
        let reply: NATSMessage
        let operation: String
        if case .lastBySubject(let subject) = selector {
            operation = "DIRECT.GET.\(stream).\(subject)"
            reply = try await rawRequest(operation, payload: Data())
        } else {
            operation = "DIRECT.GET.\(stream)"
            let body: Data
            do { body = try JetStreamJSON.encode(MessageGetRequest(selector: selector)) } catch {
                throw JetStreamError(.usage, message: "\(operation): \(error)")
            }
            reply = try await rawRequest(operation, payload: body)
        }
        return try Self.storedMessage(fromDirect: reply, operation: operation)
    }

    /// A direct-get answer: the message with `Nats-Stream`, `Nats-Sequence`, `Nats-Subject` and
    /// `Nats-Time-Stamp` headers, or a status (404: no such message).
    static func storedMessage(fromDirect reply: NATSMessage, operation: String) throws(JetStreamError) -> StoredMessage {
        if let status = reply.status, status >= 400 {
            let description = reply.headers?.statusDescription ?? ""
            if status == 404 {
                throw JetStreamError(.api, code: 404, errorCode: JetStreamError.ErrorCode.noMessageFound.rawValue, message: "\(operation): no message found \(description)")
            }
            throw JetStreamError(.api, code: status, message: "\(operation): status \(status) \(description)")
        }
        guard var headers = reply.headers, let subject = headers["Nats-Subject"], let sequenceText = headers["Nats-Sequence"],
            let sequence = UInt64(sequenceText)
        else {
            throw JetStreamError(.decoding, message: "\(operation): the answer lacks Nats-Subject or Nats-Sequence")
        }
        let time = headers["Nats-Time-Stamp"] ?? ""
        for name in ["Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Last-Sequence", "Nats-Num-Pending"] {
            headers[name] = nil
        }
        return StoredMessage(subject: subject, sequence: sequence, headers: headers.isEmpty ? nil : headers, data: reply.payload, time: time)
    }

    /// Deletes a stored message (`STREAM.MSG.DELETE`); `erase` overwrites its bytes on disk.
    public func deleteMessage(_ sequence: UInt64, stream: String, erase: Bool = false) async throws(JetStreamError) {
        try JetStreamName.validate(stream, as: "stream")
        _ = try await request(
            "STREAM.MSG.DELETE.\(stream)", body: MessageDeleteRequest(seq: sequence, no_erase: erase ? nil : true), as: SuccessResponse.self)
    }
}
