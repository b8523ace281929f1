import TestSupport
import Testing
import Transport

@testable import PGWire

@Suite("PostgreSQL messages")
struct MessageTests {
    func decodeAll(_ stream: ByteBuffer) throws -> [BackendMessage] {
        var decoder = BackendMessageDecoder()
        var buffer = stream
        var messages: [BackendMessage] = []
        while let message = try decoder.decode(&buffer) { messages.append(message) }
        #expect(buffer.readableBytes == 0)
        return messages
    }

    @Test func aSampleStreamDecodesFieldByField() throws {
        let messages = try decodeAll(BackendEncoder.sampleStream)
        #expect(messages.count == 14)
        #expect(messages[0] == .authentication(.ok))
        #expect(messages[1] == .parameterStatus(name: "server_version", value: "15.8"))
        #expect(messages[2] == .backendKeyData(BackendKeyData(processID: 4242, secretKey: [0xDE, 0xAD, 0xBE, 0xEF])))
        guard case .rowDescription(let description) = messages[4] else { Issue.record("no row description"); return }
        #expect(description.columns.map(\.name) == ["id", "name"])
        #expect(description.columns.map(\.dataType) == [.int4, .text])
        guard case .dataRow(let row) = messages[6] else { Issue.record("no row"); return }
        #expect(row.columnCount == 2)
        #expect(row[1] == nil)
        #expect(row[0] == ByteBuffer(bytes: [0, 0, 0, 1]))
        guard case .errorResponse(let error) = messages[10] else { Issue.record("no error"); return }
        #expect(error.sqlState == .uniqueViolation)
        #expect(error[.constraintName] == "t_pkey")
        #expect(error[.detail] == "Key (id)=(1) exists.")
        #expect(messages[11] == .notificationResponse(PostgresNotification(processID: 77, channel: "jobs", payload: "{\"id\":1}")))
        #expect(messages[13] == .readyForQuery(.inTransaction))
    }

    @Test func splitAtEveryOffsetWithGuardBytesAroundTheWindowTheStreamDecodesTheSame() throws {
        let stream = BackendEncoder.sampleStream
        let expected = try decodeAll(stream)
        let bytes = Array(stream.readableBytesView)
        for split in 0...bytes.count {
            var decoder = BackendMessageDecoder()
            // Guard bytes before the readable window: a decoder that looks outside it sees junk.
            var buffer = ByteBuffer(bytes: [0xEE, 0xEE] + bytes[..<split])
            buffer.moveReaderIndex(forwardBy: 2)
            var messages: [BackendMessage] = []
            while let message = try decoder.decode(&buffer) { messages.append(message) }
            buffer.writeBytes(bytes[split...])
            while let message = try decoder.decode(&buffer) { messages.append(message) }
            #expect(messages == expected, "split at \(split)")
            #expect(buffer.readableBytes == 0)
        }
        // Byte by byte.
        var decoder = BackendMessageDecoder()
        var buffer = ByteBuffer()
        var messages: [BackendMessage] = []
        for byte in bytes {
            buffer.writeInteger(byte)
            while let message = try decoder.decode(&buffer) { messages.append(message) }
        }
        #expect(messages == expected)
    }

    @Test func lengthsFromTheWireAreBoundedBeforeAnythingIsAllocated() {
        var decoder = BackendMessageDecoder(maximumMessageSize: 1024)
        var huge = ByteBuffer()
        huge.writeInteger(UInt8(ascii: "D"))
        huge.writeInteger(Int32.max)
        #expect(throws: PostgresProtocolError.self) { try decoder.decode(&huge) }

        var short = ByteBuffer(bytes: [UInt8(ascii: "Z"), 0, 0, 0, 3])
        #expect(throws: PostgresProtocolError.self) { try decoder.decode(&short) }

        // A DataRow whose cell runs past the message.
        var row = BackendEncoder.message("D") { $0.writeInteger(Int16(1)); $0.writeInteger(Int32(100)); $0.writeInteger(Int32(0)) }
        var fresh = BackendMessageDecoder()
        #expect(throws: PostgresProtocolError.self) { try fresh.decode(&row) }

        // A column count larger than the body could hold.
        var columns = BackendEncoder.message("T") { $0.writeInteger(Int16(30000)) }
        #expect(throws: PostgresProtocolError.self) { try fresh.decode(&columns) }

        var unknown = ByteBuffer(bytes: [UInt8(ascii: "?"), 0, 0, 0, 4])
        do throws(PostgresProtocolError) {
            _ = try fresh.decode(&unknown)
            Issue.record("an unknown type decoded")
        } catch {
            #expect(error.description.contains("unknown message 0x3f"))
        }
    }

    @Test func seededMutationsOfTheStreamEndInMessagesOrATypedError() {
        let bytes = Array(BackendEncoder.sampleStream.readableBytesView)
        var generator = SplitMix64(seed: 0x5EED)
        let alphabet = (0...255).map { UInt8($0) }
        for _ in 0..<3000 {
            let mutated = generator.mutate(bytes, alphabet: alphabet)
            var decoder = BackendMessageDecoder(maximumMessageSize: 4096)
            var buffer = ByteBuffer(bytes: mutated)
            var count = 0
            do {
                while let _ = try decoder.decode(&buffer) { count += 1 }
            } catch {
                _ = error.description
            }
            #expect(count <= 14 + 4)
        }
    }

    @Test func frontendMessagesAreFramedRefuseNULAndRollBackOnError() throws {
        var out = ByteBuffer()
        try FrontendMessage.query("SELECT 1", into: &out)
        #expect(Array(out.readableBytesView) == [0x51, 0, 0, 0, 13] + Array("SELECT 1".utf8) + [0])
        let before = out.writerIndex
        #expect(throws: FrontendEncodingError.self) { try FrontendMessage.query("SELECT '\u{0}'", into: &out) }
        #expect(out.writerIndex == before)

        var startup = ByteBuffer()
        try FrontendMessage.startup(parameters: [("user", "u"), ("database", "d")], into: &startup)
        #expect(startup.getInteger(as: Int32.self) == Int32(startup.readableBytes))
        #expect(startup.getInteger(at: 4, as: Int32.self) == 196_608)

        var cancel = ByteBuffer()
        FrontendMessage.cancelRequest(BackendKeyData(processID: 7, secretKey: [1, 2, 3, 4]), into: &cancel)
        #expect(Array(cancel.readableBytesView) == [0, 0, 0, 16, 0x04, 0xD2, 0x16, 0x2E, 0, 0, 0, 7, 1, 2, 3, 4])
    }

    @Test func aBindFromAReusedHeadIsTheSameMessageAsOneBuiltWhole() throws {
        var parameters = PostgresBindings()
        parameters.append(Int32(42))
        parameters.append("name-42")
        parameters.appendNull(.text)
        for (statement, binaryResults) in [("", true), ("s17", true), ("s17", false)] {
            var whole = ByteBuffer()
            try FrontendMessage.bind(
                portal: "", statement: statement, parameterCount: parameters.count, parameterFormats: [true],
                parameters: parameters.bytes, binaryResults: binaryResults, into: &whole)
            let head = try FrontendMessage.bindHead(statement: statement)
            var reused = ByteBuffer()
            reused.writeString("x")  // appended after what the buffer holds
            try FrontendMessage.bind(
                head: head, parameterCount: parameters.count, parameters: parameters.bytes, binaryResults: binaryResults, into: &reused)
            #expect(Array(reused.readableBytesView.dropFirst()) == Array(whole.readableBytesView))
        }
        #expect(throws: FrontendEncodingError.self) { try FrontendMessage.bindHead(statement: "a\u{0}b") }
    }

    @Test func statementsThatMayStartACopyAreRecognisedInAnyCase() {
        #expect(PostgresConnection.mayStartCopy("COPY t FROM STDIN"))
        #expect(PostgresConnection.mayStartCopy("select 1; cOpY t from stdin"))
        #expect(PostgresConnection.mayStartCopy("ccopy"))
        #expect(!PostgresConnection.mayStartCopy("SELECT cop, y FROM t"))
    }
}
