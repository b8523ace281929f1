import Foundation
import TestSupport
import Testing
import Transport

@testable import NATSProto

@Suite("NATS protocol parser")
struct NATSParserTests {
    func parseAll(_ bytes: [UInt8], parser: NATSParser = NATSParser()) throws -> [NATSServerOperation] {
        var parser = parser
        var buffer = ByteBuffer(bytes: bytes)
        var operations: [NATSServerOperation] = []
        while let operation = try parser.next(&buffer) { operations.append(operation) }
        #expect(buffer.readableBytes == 0)
        return operations
    }

    @Test func theCapturedSessionsOfBothServerVersionsParseOperationByOperation() throws {
        let fixtures = try GoldenStream.nats()
        #expect(fixtures.count == 2)
        for fixture in fixtures {
            var parser = NATSParser()
            for operation in fixture.lines where operation.fromServer {
                var buffer = ByteBuffer(bytes: operation.bytes)
                let parsed = try parser.next(&buffer)
                #expect(buffer.readableBytes == 0, "\(fixture.name): \(operation.note)")
                switch parsed {
                case .info(let json)?:
                    #expect(operation.note.hasPrefix("INFO"))
                    #expect(json.readableBytesView.first == UInt8(ascii: "{"))
                case .message(let message)?:
                    let words = operation.note.split(separator: " ")
                    #expect(message.subjectString == String(words[1]), "\(operation.note)")
                    #expect(message.subscriptionID == UInt64(words[2]), "\(operation.note)")
                    if words[0] == "HMSG" {
                        let headers = try NATSHeaders(parsing: try #require(message.headerBlock))
                        if message.subjectString == "_INBOX.fixture.1" {
                            #expect(headers.status == 503)
                        } else {
                            #expect(headers.values(for: "Trace-Id") == ["abc", "def"])
                            #expect(headers["lower-Case"] == "kept")
                        }
                    }
                    if message.subjectString == "one.five" { #expect(message.payload.readableBytes == 3000) }
                case .ok?: #expect(operation.note == "+OK")
                case .pong?: #expect(operation.note == "PONG")
                case .error(let text)?: #expect(text == "Unknown Protocol Operation")
                case .ping?, nil: Issue.record("\(fixture.name): \(operation.note) parsed as \(String(describing: parsed))")
                }
            }
        }
    }

    @Test func splitAtEveryOffsetAndByteByByteTheStreamsParseTheSame() throws {
        for fixture in try GoldenStream.nats() {
            let bytes = fixture.serverBytes
            let expected = try parseAll(bytes)
            for split in 0...bytes.count {
                var parser = NATSParser()
                var buffer = ByteBuffer(bytes: [0x55, 0x55] + bytes[..<split])
                buffer.moveReaderIndex(forwardBy: 2)
                var operations: [NATSServerOperation] = []
                while let operation = try parser.next(&buffer) { operations.append(operation) }
                buffer.writeBytes(bytes[split...])
                while let operation = try parser.next(&buffer) { operations.append(operation) }
                #expect(operations == expected, "\(fixture.name) split at \(split)")
            }
            var parser = NATSParser()
            var buffer = ByteBuffer()
            var operations: [NATSServerOperation] = []
            for byte in bytes {
                buffer.writeInteger(byte)
                while let operation = try parser.next(&buffer) { operations.append(operation) }
            }
            #expect(operations == expected)
        }
    }

    @Test func aLongControlLineArrivingAByteAtATimeParsesWhole() throws {
        let json = "{\"x\":\"" + String(repeating: "a", count: 3980) + "\"}"
        var parser = NATSParser()
        var buffer = ByteBuffer()
        var result: NATSServerOperation?
        for byte in Array("INFO \(json)\r\n".utf8) {
            buffer.writeInteger(byte)
            if let operation = try parser.next(&buffer) { result = operation }
        }
        guard case .info(let payload)? = result else {
            Issue.record("no INFO")
            return
        }
        #expect(payload.readableBytes == json.utf8.count)
    }

    @Test func operationNamesInAnyCaseTabsBetweenFieldsMalformedLinesAreTypedErrors() throws {
        let operations = try parseAll(Array("ping\r\nPoNg\r\n+ok\r\nmsg\tfoo\t7\t2\r\nhi\r\n-err 'bad thing'\r\n".utf8))
        #expect(operations.count == 5)
        guard case .message(let message) = operations[3] else {
            Issue.record("no MSG")
            return
        }
        #expect(message.subjectString == "foo" && message.subscriptionID == 7 && message.payload == ByteBuffer(string: "hi"))
        #expect(operations[4] == .error("bad thing"))

        for bad in ["MSG foo\r\n", "MSG foo x 2\r\nhi\r\n", "MSG foo 1 2\r\nhiXX", "HMSG foo 1 9 2\r\nhi\r\n", "WHAT\r\n", "MSG a 1 b c d\r\n"] {
            var parser = NATSParser()
            var buffer = ByteBuffer(string: bad)
            #expect(throws: NATSProtocolError.self, "\(bad)") { while try parser.next(&buffer) != nil {} }
        }
        // Bounds: a control line past the limit, a payload past max_payload.
        var long = NATSParser(maximumControlLine: 64)
        var buffer = ByteBuffer(string: "INFO " + String(repeating: "x", count: 100))
        #expect(throws: NATSProtocolError.self) { try long.next(&buffer) }
        var small = NATSParser(maximumPayload: 10)
        var big = ByteBuffer(string: "MSG a 1 11\r\n")
        #expect(throws: NATSProtocolError.self) { try small.next(&big) }
    }

    @Test func seededMutationsEndInOperationsOrATypedError() throws {
        var generator = SplitMix64(seed: 0xBADC0DE)
        let alphabet = Array("MSGHPINOKER+-\r\n \t0123456789abc.*>{}".utf8) + [0, 0xFF]
        for fixture in try GoldenStream.nats() {
            let bytes = fixture.serverBytes
            for _ in 0..<2000 {
                let mutated = generator.mutate(bytes, alphabet: alphabet)
                var parser = NATSParser(maximumControlLine: 4096, maximumPayload: 1 << 20)
                var buffer = ByteBuffer(bytes: mutated)
                var count = 0
                do {
                    while try parser.next(&buffer) != nil { count += 1 }
                } catch {
                    #expect(!error.description.isEmpty)
                }
                #expect(count <= fixture.lines.count + 8)
            }
        }
    }
}

@Suite("NATS client operations")
struct ClientOperationTests {
    @Test func operationsEncodeAsTheProtocolDefines() throws {
        var out = ByteBuffer()
        try NATSClientOperation.publish(subject: "a.b", payload: Array("hello".utf8), into: &out)
        try NATSClientOperation.publish(subject: "a.b", replyTo: "_INBOX.x", payload: [UInt8](), into: &out)
        var headers: NATSHeaders = ["Trace-Id": "1"]
        headers.append("Trace-Id", "2")
        try NATSClientOperation.publish(subject: "h", headers: headers, payload: Array("x".utf8), into: &out)
        try NATSClientOperation.subscribe(subject: "a.*", queue: "workers", sid: 12, into: &out)
        NATSClientOperation.unsubscribe(sid: 12, after: 5, into: &out)
        let text = String(decoding: out.readableBytesView, as: UTF8.self)
        #expect(
            text == "PUB a.b 5\r\nhello\r\nPUB a.b _INBOX.x 0\r\n\r\n"
                + "HPUB h 38 39\r\nNATS/1.0\r\nTrace-Id: 1\r\nTrace-Id: 2\r\n\r\nx\r\n"
                + "SUB a.* workers 12\r\nUNSUB 12 5\r\n")
    }

    @Test func invalidSubjectsQueuesAndHeadersAreRefusedBeforeAnythingIsWritten() {
        var out = ByteBuffer()
        for subject in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "tab\there"] {
            #expect(throws: NATSUsageError.self, "\(subject)") {
                try NATSClientOperation.publish(subject: subject, payload: [UInt8](), into: &out)
            }
        }
        #expect(throws: NATSUsageError.self) { try NATSClientOperation.subscribe(subject: "a.>.b", sid: 1, into: &out) }
        #expect(throws: NATSUsageError.self) { try NATSClientOperation.subscribe(subject: "a", queue: "two words", sid: 1, into: &out) }
        #expect(throws: NATSUsageError.self) {
            try NATSClientOperation.publish(subject: "a", headers: ["Bad:Name": "v"], payload: [UInt8](), into: &out)
        }
        #expect(throws: NATSUsageError.self) {
            try NATSClientOperation.publish(subject: "a", headers: ["Name": "line\r\nbreak"], payload: [UInt8](), into: &out)
        }
        #expect(out.readableBytes == 0)
        #expect(throws: Never.self) { try NATSSubject.validate("a.*.>", wildcards: true) }
    }

    @Test func headersRoundTripWithStatusDescriptionAndRepeatedKeys() throws {
        var headers = NATSHeaders()
        headers.status = 100
        headers.statusDescription = "Idle Heartbeat"
        headers.append("Nats-Last-Consumer", "7")
        var block = ByteBuffer()
        #expect(headers.encode(into: &block))
        let parsed = try NATSHeaders(parsing: block)
        #expect(parsed == headers)
        #expect(throws: NATSProtocolError.self) { try NATSHeaders(parsing: ByteBuffer(string: "HTTP/1.1\r\n\r\n")) }
    }

    /// Header blocks read the plain way (as text, line by line), to hold the byte reader to.
    static func referenceHeaders(_ block: [UInt8]) -> NATSHeaders? {
        let text = String(decoding: block, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        guard let first = lines.popFirst(), first.hasPrefix("NATS/1.0") else { return nil }
        var headers = NATSHeaders()
        let statusPart = first.dropFirst("NATS/1.0".count).drop(while: { $0 == " " || $0 == "\t" })
        if !statusPart.isEmpty {
            let code = statusPart.prefix(while: { $0.isASCII && $0.isNumber })
            guard code.count == 3, let value = Int(code) else { return nil }
            headers.status = value
            let description = statusPart.dropFirst(3).drop(while: { $0 == " " || $0 == "\t" })
            headers.statusDescription = description.isEmpty ? nil : String(description)
        }
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = String(line[..<colon])
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
            var value = line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" })
            while let last = value.last, last == " " || last == "\t" { value = value.dropLast() }
            headers.append(name, String(value))
        }
        return headers
    }

    @Test func theByteReaderOfHeadersAgreesWithTheTextReadingOnMutatedBlocks() {
        let seeds = [
            "NATS/1.0\r\nNats-Stream: KV_x\r\nNats-Subject: $KV.x.key\r\nNats-Sequence: 42\r\n\r\n",
            "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 7\r\nNats-Last-Stream: 9\r\n\r\n",
            "NATS/1.0 503\r\n\r\n",
            "NATS/1.0 409 Leadership Change\r\n\r\n",
            "NATS/1.0\r\nA: 1\r\nA:  two  \r\nKV-Operation: DEL\r\n\r\n",
        ]
        // ASCII that matters to the grammar, a precomposed letter and a byte that is not UTF-8
        // (no combining marks: the text reading groups them with ':' and CR LF into one character).
        let alphabet: [[UInt8]] = [[0x0D], [0x0A], [0x0D, 0x0A], [0x3A], [0x20], [0x09], [0x31], [0x41], [0xC3, 0xA9], [0xFF], [0x7F], [0x00]]
        var generator = SplitMix64(seed: 43)
        for round in 0..<20_000 {
            var block = Array(seeds[round % seeds.count].utf8)
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let position = Int(generator.next() % UInt64(block.count))
                let piece = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                switch generator.next() % 3 {
                case 0: block.remove(at: position)
                case 1: block.insert(contentsOf: piece, at: position)
                default: block.replaceSubrange(position...position, with: piece)
                }
            }
            let parsed = try? NATSHeaders(parsing: ByteBuffer(bytes: block))
            #expect(parsed == Self.referenceHeaders(block), "\(block)")
        }
    }

    @Test func nuidsAre22Base62CharactersAndDoNotRepeat() {
        var nuid = NUID()
        var seen = Set<String>()
        for _ in 0..<100_000 {
            let id = nuid.next()
            #expect(id.utf8.count == 22)
            seen.insert(id)
        }
        #expect(seen.count == 100_000)
        #expect(nuid.next().utf8.allSatisfy { NUID.digits.contains($0) })
        var other = NUID()
        #expect(other.next().prefix(12) != nuid.next().prefix(12))
    }
}
