import Foundation
import Testing
import TestSupport
@testable import Transport
@testable import RESP

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }
func simple(_ text: String) -> RESPValue { .simpleString(ByteBuffer(string: text)) }

@Suite("RESP parser")
struct RESPParserTests {
    @Test func simpleRepliesAreSkippedUnbuiltAndEverythingElseIsLeftForNext() throws {
        var parser = RESPParser()
        var buffer = ByteBuffer(string: "+OK\r\n:42\r\n:-7\r\n+\r\n-ERR no\r\n+OK\r\n")
        for _ in 0..<4 {
            let skipped = parser.skipSimpleReply(&buffer)
            #expect(skipped)
        }
        // An error is never skipped: next() reads it.
        let errorSkipped = parser.skipSimpleReply(&buffer)
        #expect(!errorSkipped)
        let error = try parser.next(&buffer)
        #expect(error == .simpleError(ByteBuffer(string: "ERR no")))
        let lastSkipped = parser.skipSimpleReply(&buffer)
        #expect(lastSkipped)
        #expect(buffer.readableBytes == 0)
        #expect(parser.bytesExamined == 32)

        // Refused, consuming nothing: partial lines, aggregates, bulk strings, pushes, a bad or
        // too long integer, a line without CR.
        for text in ["+OK\r", "+OK", "*1\r\n:1\r\n", "$2\r\nok\r\n", ">1\r\n+x\r\n", ":12a\r\n", ":1234567890123456789\r\n", "+OK\n", ":\r\n", ":-\r\n"] {
            var fresh = RESPParser()
            var bytes = ByteBuffer(string: text)
            let skipped = fresh.skipSimpleReply(&bytes)
            #expect(!skipped, "\(text.debugDescription)")
            #expect(bytes.readableBytes == text.utf8.count)
        }

        // Inside an aggregate under construction nothing is skipped: the elements belong to it.
        var nested = RESPParser()
        var stream = ByteBuffer(string: "*2\r\n:1\r\n")
        let partial = try nested.next(&stream)
        #expect(partial == nil)
        stream.writeString(":2\r\n")
        let skippedInside = nested.skipSimpleReply(&stream)
        #expect(!skippedInside)
        let whole = try nested.next(&stream)
        #expect(whole == .array([.integer(1), .integer(2)]))
    }

    @Test func everyScalarType() throws {
        let stream = "+OK\r\n-ERR bad\r\n:-42\r\n$5\r\nhel\0o\r\n$0\r\n\r\n_\r\n$-1\r\n*-1\r\n#t\r\n#f\r\n"
            + ",3.25\r\n,inf\r\n,-inf\r\n,nan\r\n,1.5e10\r\n,10\r\n,-0.5E-3\r\n(-3492890328409238509324850943850943825024385\r\n"
            + "!21\r\nSYNTAX invalid syntax\r\n=15\r\ntxt:Some string\r\n"
        let values = try parseAll(bytes(stream))
        #expect(values.count == 20)
        #expect(values[0] == simple("OK"))
        #expect(values[1] == .simpleError(ByteBuffer(string: "ERR bad")))
        #expect(values[2] == .integer(-42))
        #expect(values[3] == .bulkString(ByteBuffer(bytes: Array("hel\0o".utf8))))
        #expect(values[4] == bulk(""))
        #expect(values[5] == .null && values[6] == .null && values[7] == .null)
        #expect(values[8] == .boolean(true) && values[9] == .boolean(false))
        #expect(values[10] == .double(3.25) && values[11] == .double(.infinity) && values[12] == .double(-.infinity))
        if case .double(let nan) = values[13] { #expect(nan.isNaN) } else { Issue.record("nan") }
        #expect(values[14] == .double(1.5e10) && values[15] == .double(10) && values[16] == .double(-0.5e-3))
        #expect(values[17] == .bigNumber("-3492890328409238509324850943850943825024385"))
        #expect(values[18] == .bulkError(ByteBuffer(string: "SYNTAX invalid syntax")))
        #expect(values[19] == .verbatimString(format: "txt", text: ByteBuffer(string: "Some string")))
    }

    @Test func aggregatesKeepOrderAndKeyTypes() throws {
        let stream = "*3\r\n:1\r\n*1\r\n+a\r\n_\r\n%2\r\n:1\r\n+one\r\n*1\r\n:2\r\n+two\r\n~2\r\n+x\r\n+y\r\n*0\r\n%0\r\n"
        let values = try parseAll(bytes(stream))
        #expect(values == [
            .array([.integer(1), .array([simple("a")]), .null]),
            .map([RESPPair(key: .integer(1), value: simple("one")), RESPPair(key: .array([.integer(2)]), value: simple("two"))]),
            .set([simple("x"), simple("y")]),
            .array([]),
            .map([]),
        ])
    }

    @Test func attributesAttachToTheFollowingValueAtEveryLevel() throws {
        let stream = "|1\r\n+ttl\r\n:3600\r\n$5\r\nvalue\r\n" + "*2\r\n:1\r\n|1\r\n+hint\r\n#t\r\n:2\r\n"
        let values = try parseAll(bytes(stream))
        #expect(values.count == 2, "an attribute is never a reply of its own")
        #expect(values[0] == .attributed(bulk("value"), attributes: [RESPPair(key: simple("ttl"), value: .integer(3600))]))
        #expect(values[1] == .array([.integer(1), .attributed(.integer(2), attributes: [RESPPair(key: simple("hint"), value: .boolean(true))])]))
        #expect(values[0].withoutAttributes == bulk("value"))
    }

    @Test func pushesArriveBetweenRepliesAsTheirOwnValues() throws {
        let values = try parseAll(bytes(">2\r\n+invalidate\r\n*1\r\n+k\r\n+PONG\r\n"))
        #expect(values == [.push([simple("invalidate"), .array([simple("k")])]), simple("PONG")])
    }

    @Test func streamedStringsAndAggregates() throws {
        let stream = "$?\r\n;4\r\nHell\r\n;6\r\no worl\r\n;1\r\nd\r\n;0\r\n" + "*?\r\n:1\r\n$?\r\n;2\r\nab\r\n;0\r\n.\r\n"
            + "%?\r\n+a\r\n:1\r\n.\r\n" + "~?\r\n.\r\n"
        let values = try parseAll(bytes(stream))
        #expect(values == [
            bulk("Hello world"),
            .array([.integer(1), bulk("ab")]),
            .map([RESPPair(key: simple("a"), value: .integer(1))]),
            .set([]),
        ])
    }

    @Test func malformedInputIsATypedErrorWithItsOffset() {
        let cases: [(String, RESPProtocolError.Kind)] = [
            ("?what\r\n", .unknownType),
            (":12a\r\n", .malformed),
            (":99999999999999999999\r\n", .malformed),
            ("$3\r\nabcd\r\n", .malformed),
            ("#x\r\n", .malformed),
            (",1.2.3x\r\n", .malformed),
            ("+OK\n", .malformed),
            (";3\r\nabc\r\n", .unexpected),
            (".\r\n", .unexpected),
            ("$?\r\n+OK\r\n", .unexpected),  // at 12: the +OK
            ("(12a\r\n", .malformed),
            ("=2\r\nab\r\n", .malformed),
            ("%?\r\n+a\r\n.\r\n", .malformed),
            ("_x\r\n", .malformed),
        ]
        for (input, kind) in cases {
            do {
                let values = try parseAll(bytes("+first\r\n" + input))
                Issue.record("accepted \(input.debugDescription) as \(values)")
            } catch {
                #expect(error.kind == kind, "\(input.debugDescription): \(error)")
                // The offending frame: the first one after "+first\r\n", or the frame named in the case.
                let expected = input.hasPrefix("$?") ? 12 : input.hasPrefix("%?") ? 16 : 8
                #expect(error.offset == expected, "\(input.debugDescription): \(error)")
            }
        }
    }

    @Test func limitsEndInATypedErrorNotAnAllocation() {
        let small = RESPParser(limits: .init(maximumBulkLength: 1024, maximumAggregateCount: 100, maximumDepth: 8, maximumLineLength: 64))
        for input in [
            "$1025\r\n", "$9223372036854775807\r\n", "*101\r\n", "%51\r\n", "|51\r\n", String(repeating: "*1\r\n", count: 9) + ":1\r\n",
            "+" + String(repeating: "x", count: 100) + "\r\n", "$-2\r\n", "*-5\r\n",
        ] {
            #expect(throws: RESPProtocolError.self, "\(input.prefix(20).debugDescription)") { try parseAll(bytes(input), parser: small) }
        }
        // A line that never ends is refused once it passes the limit, however it is split.
        #expect(throws: RESPProtocolError.self) { try parseAll(bytes("+" + String(repeating: "y", count: 500)), chunk: 7, parser: small) }
    }

    @Test func hundredMegabyteBulkStringInFourKilobyteReadsIsLinear() throws {
        let size = 100 * 1024 * 1024
        var parser = RESPParser()
        var buffer = ByteBuffer()
        buffer.writeString("$\(size)\r\n")
        var sent = 0
        var result: RESPValue?
        while result == nil {
            #expect(try parser.next(&buffer) == nil || sent == size)
            let chunk = Swift.min(4096, size + 2 - sent)
            if chunk > 0 {
                if sent + chunk > size {
                    buffer.writeRepeating(UInt8(ascii: "z"), count: size - sent)
                    buffer.writeString("\r\n")
                } else {
                    buffer.writeRepeating(UInt8(ascii: "z"), count: chunk)
                }
                sent += chunk
            }
            result = try parser.next(&buffer)
        }
        guard case .bulkString(let payload) = result else { Issue.record("expected a bulk string"); return }
        #expect(payload.readableBytes == size)
        #expect(parser.bytesExamined < 64, "payload bytes are never scanned: \(parser.bytesExamined)")
    }

    @Test func millionElementArrayInFourKilobyteReadsIsLinear() throws {
        var stream = Array("*1000000\r\n".utf8)
        stream.reserveCapacity(4_000_000 + 16)
        for index in 0..<1_000_000 { stream += Array(":\(index % 10)\r\n".utf8) }
        var parser = RESPParser()
        let values = try parseAll(stream, chunk: 4096, parser: parser)
        guard case .array(let elements) = values.first else { Issue.record("expected an array"); return }
        #expect(elements.count == 1_000_000)
        parser = RESPParser()
        var buffer = ByteBuffer()
        var offset = 0
        while offset < stream.count {
            let end = Swift.min(stream.count, offset + 4096)
            buffer.writeBytes(stream[offset..<end])
            offset = end
            _ = try parser.next(&buffer)
            buffer.compact()
        }
        #expect(parser.bytesExamined <= stream.count, "each byte examined at most once: \(parser.bytesExamined) for \(stream.count)")
    }

    @Test func bulkPayloadsAreSlicesOfTheReadBuffer() throws {
        var parser = RESPParser()
        var buffer = ByteBuffer(string: "$11\r\nhello world\r\n")
        let value = try parser.next(&buffer)
        guard case .bulkString(let payload) = value else { Issue.record("expected a bulk string"); return }
        #expect(payload.storage === buffer.storage, "the payload is a slice of the read buffer")
    }

    @Test func commandEncoderIsBinarySafe() {
        var buffer = ByteBuffer()
        RESPCommandEncoder.encode(["SET", .bytes(ByteBuffer(bytes: [0, 13, 10, 255])), 42, -7], into: &buffer)
        #expect(Array(buffer.readableBytesView) == bytes("*4\r\n$3\r\nSET\r\n$4\r\n") + [0, 13, 10, 255] + bytes("\r\n$2\r\n42\r\n$2\r\n-7\r\n"))
    }
}
