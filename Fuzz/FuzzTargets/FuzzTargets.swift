// The bodies of the fuzz targets, shared by the libFuzzer executables (`make fuzz`) and by the
// test suite, which replays the regression cases kept under `Fixtures/fuzz/<target>/`.
//
// Every target feeds its input to a parser as a hostile server or file would: the framing
// parsers get it whole and then in pieces of varying sizes, and both feeds must end in the same
// outcome (the same number of values, and the same kind of error or none), since where a read
// happens to split the stream must never change what the client sees.

import FuzzSupport
import Foundation
import JetStream
import NATSProto
import PGWire
import RESP
import Settings
import Transport

/// How one feed of an input ended.
public struct FuzzOutcome: Equatable, Sendable, CustomStringConvertible {
    /// Values decoded (messages, replies, documents) before the feed ended.
    public var values: Int
    /// The type of the error that ended it, or nil when every byte was consumed or is still
    /// waiting for more.
    public var error: String?

    public init(values: Int, error: String?) {
        self.values = values
        self.error = error
    }

    public var description: String { "\(values) values" + (error.map { ", then \($0)" } ?? "") }
}

/// What replaying one input found.
public struct FuzzReplay: Sendable {
    /// The outcome of the whole input in one piece.
    public let whole: FuzzOutcome
    /// The outcome of the same input in pieces of varying sizes; nil for the targets whose parser
    /// takes a whole document.
    public let split: FuzzOutcome?

    /// The two feeds disagree: a framing bug, treated by the fuzzers as a crash.
    public var feedsDisagree: Bool { split.map { $0 != whole } ?? false }
}

public enum FuzzTarget: String, CaseIterable, Sendable {
    case resp, nats, pgwire, toml, jetstream

    /// Runs the target on `bytes`.
    public func replay(_ bytes: [UInt8]) -> FuzzReplay {
        switch self {
        case .resp: return Self.framed(bytes, Self.resp)
        case .nats: return Self.framed(bytes, Self.nats)
        case .pgwire: return Self.framed(bytes, Self.pgwire)
        case .toml: return FuzzReplay(whole: Self.toml(bytes), split: nil)
        case .jetstream: return FuzzReplay(whole: Self.jetstream(bytes), split: nil)
        }
    }

    /// One feed of a framing parser: the input whole (true) or in pieces of varying sizes.
    typealias Feed = ([UInt8], _ whole: Bool) -> FuzzOutcome

    private static func framed(_ bytes: [UInt8], _ feed: Feed) -> FuzzReplay {
        FuzzReplay(whole: feed(bytes, true), split: feed(bytes, false))
    }

    /// Drives `drain` over `bytes`, whole or split: each piece is appended to one buffer that
    /// `drain` empties of whole values (counting each) until it needs more or throws; the buffer
    /// is compacted in between, as the client's read loop does. Records how the feed ended.
    private static func drive(_ bytes: [UInt8], whole: Bool, _ drain: (inout ByteBuffer, inout Int) throws -> Void) -> FuzzOutcome {
        var buffer = ByteBuffer()
        var outcome = FuzzOutcome(values: 0, error: nil)
        let consume: (ArraySlice<UInt8>) -> Bool = { piece in
            buffer.writeBytes(piece)
            do {
                try drain(&buffer, &outcome.values)
            } catch {
                outcome.error = String(describing: type(of: error))
                return false
            }
            buffer.compact()
            return true
        }
        if whole { feedInPieces(bytes, size: .max, consume) } else { feedInVaryingPieces(bytes, consume) }
        return outcome
    }

    // MARK: RESP3

    /// The whole feed also skips every reply `skipSimpleReply` takes (as a pipeline that keeps
    /// only errors reads), the split feed builds every value: the two must agree, so a skip that
    /// consumes other bytes than `next` would, or takes a reply `next` refuses, shows as a
    /// disagreement.
    static func resp(_ bytes: [UInt8], whole: Bool) -> FuzzOutcome {
        let limits = RESPParser.Limits(maximumBulkLength: 1 << 20, maximumAggregateCount: 1 << 16, maximumDepth: 64, maximumLineLength: 1 << 16)
        var parser = RESPParser(limits: limits)
        return drive(bytes, whole: whole) { buffer, count in
            while true {
                if whole, parser.skipSimpleReply(&buffer) {
                    count += 1
                    continue
                }
                guard try parser.next(&buffer) != nil else { break }
                count += 1
            }
        }
    }

    // MARK: NATS

    /// Operations are framed on every feed; INFO bodies and header blocks are decoded, as the
    /// client decodes them, on the whole feed only (the split feed checks the framing).
    static func nats(_ bytes: [UInt8], whole: Bool) -> FuzzOutcome {
        var parser = NATSParser(maximumControlLine: 4096, maximumPayload: 1 << 20)
        return drive(bytes, whole: whole) { buffer, count in
            while let operation = try parser.next(&buffer) {
                count += 1
                guard whole else { continue }
                switch operation {
                case .info(let json): _ = try? NATSServerInfo(json: json)
                case .message(let message):
                    if let block = message.headerBlock { _ = try? NATSHeaders(parsing: block) }
                default: break
                }
            }
        }
    }

    // MARK: PostgreSQL

    /// Backend messages are framed on every feed; on the whole feed every DataRow cell is also
    /// decoded as every supported type.
    static func pgwire(_ bytes: [UInt8], whole: Bool) -> FuzzOutcome {
        var decoder = BackendMessageDecoder(maximumMessageSize: 1 << 20)
        return drive(bytes, whole: whole) { buffer, count in
            while let message = try decoder.decode(&buffer) {
                count += 1
                if whole, case .dataRow(let row) = message { decodeCells(row) }
            }
        }
    }

    /// Decodes every cell as every type, binary, with the type its decoder expects.
    static func decodeCells(_ row: DataRow) {
        for cell in row {
            guard let cell else { continue }
            func attempt<T: PostgresDecodable>(_ type: T.Type, _ oid: PostgresDataType) { _ = try? T(postgresCell: cell, type: oid, isBinary: true) }
            attempt(Int.self, .int8)
            attempt(Int32.self, .int4)
            attempt(Double.self, .float8)
            attempt(String.self, .numeric)
            attempt(Decimal.self, .numeric)
            attempt(String.self, .jsonb)
            attempt(UUID.self, .uuid)
            attempt(Date.self, .timestamptz)
            attempt(PostgresInterval.self, .interval)
            attempt(PostgresTime.self, .timetz)
            attempt(PostgresInet.self, .inet)
            attempt([Int32?].self, PostgresDataType(1007))
            attempt(PostgresArray<String>.self, PostgresDataType(1009))
            attempt(PostgresRange<Int64>.self, .int8range)
            attempt(Bool.self, .bool)
            attempt(ByteBuffer.self, .bytea)
            _ = try? ByteBuffer(postgresCell: cell, type: .bytea, isBinary: false)
        }
    }

    // MARK: TOML and .env

    /// The outcome is the TOML document's; the same text is also read as a single value and as a
    /// `.env` file, which must not crash either.
    static func toml(_ bytes: [UInt8]) -> FuzzOutcome {
        let outcome: FuzzOutcome
        do {
            _ = try TOML.parse(bytes: bytes)
            outcome = FuzzOutcome(values: 1, error: nil)
        } catch {
            outcome = FuzzOutcome(values: 0, error: String(describing: type(of: error)))
        }
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? TOML.parseValue(text)
        _ = DotEnv(parsing: text).resolved(environment: [:])
        return outcome
    }

    // MARK: JetStream

    /// The input decoded as each API answer and read as an ack subject; `values` counts the
    /// readings that succeeded, and when none did, `error` names the first that failed (one
    /// input is never every kind of answer, so a failure beside a success is no error).
    static func jetstream(_ bytes: [UInt8]) -> FuzzOutcome {
        let data = Data(bytes)
        let decoder = JSONDecoder()
        var outcome = FuzzOutcome(values: 0, error: nil)
        func attempt(_ name: String, _ read: () throws -> Void) {
            do {
                try read()
                outcome.values += 1
            } catch {
                if outcome.error == nil { outcome.error = name }
            }
        }
        attempt("StreamInfo") { _ = try decoder.decode(StreamInfo.self, from: data) }
        attempt("ConsumerInfo") { _ = try decoder.decode(ConsumerInfo.self, from: data) }
        attempt("PubAck") { _ = try decoder.decode(PubAck.self, from: data) }
        attempt("AccountInfo") { _ = try decoder.decode(AccountInfo.self, from: data) }
        attempt("ObjectInfo") { _ = try decoder.decode(ObjectInfo.self, from: data) }
        if bytes.count < 4096 {
            attempt("MessageMetadata") { _ = try MessageMetadata(ackSubject: String(decoding: bytes, as: UTF8.self)) }
        }
        if outcome.values > 0 { outcome.error = nil }
        return outcome
    }
}

extension FuzzTarget {
    /// The libFuzzer callback: replays the input and stops the run (a crash libFuzzer records,
    /// with the input) when the whole and the split feeds disagree.
    public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
        let replay = replay(Array(UnsafeBufferPointer(start: data, count: size)))
        if replay.feedsDisagree, let split = replay.split {
            preconditionFailure("\(rawValue): the whole input gave \(replay.whole), the split feed \(split)")
        }
        return 0
    }
}
