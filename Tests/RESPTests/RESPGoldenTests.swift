import Foundation
import Testing
import TestSupport
@testable import Transport
@testable import RESP

@Suite("RESP golden streams")
struct RESPGoldenTests {
    @Test(arguments: GoldenStream.respNames)
    func goldenStreamParsesTheSameHoweverItIsSplit(_ name: String) throws {
        let fixture = try GoldenStream.resp(name)
        let whole = try parseAll(fixture.serverBytes)
        #expect(!whole.isEmpty)
        #expect(try parseAll(fixture.serverBytes, chunk: 1) == whole, "byte by byte")
        for split in 1..<fixture.serverBytes.count {
            var parser = RESPParser()
            var buffer = ByteBuffer(bytes: fixture.serverBytes[..<split])
            var values: [RESPValue] = []
            while let value = try parser.next(&buffer) { values.append(value) }
            buffer.writeBytes(fixture.serverBytes[split...])
            while let value = try parser.next(&buffer) { values.append(value) }
            #expect(values == whole, "split at \(split)")
            if values != whole { break }
        }
    }

    @Test func everyDebugProtocolTypeFromRedis() throws {
        let values = try parseAll(try GoldenStream.resp("resp3-types").serverBytes)
        guard case .map(let hello) = values[0] else { Issue.record("HELLO 3 answers a map"); return }
        #expect(hello.contains { $0.key == bulk("proto") && $0.value == .integer(3) })
        #expect(values[1] == bulk("Hello World"))
        #expect(values[2] == .integer(12345))
        #expect(values[3] == .double(3.141))
        #expect(values.contains(.bigNumber("1234567999999999999999999999999999999")))
        #expect(values.contains { if case .attributed(_, let attributes) = $0 { return attributes.first?.key == bulk("key-popularity") }; return false })
        #expect(values.contains { if case .push(let items) = $0 { return items.first == bulk("server-cpu-usage") }; return false })
        #expect(values.contains { if case .verbatimString("txt", _) = $0 { return true }; return false })
        #expect(values.contains(.boolean(true)) && values.contains(.boolean(false)))
        #expect(values.contains { $0.isError })
    }

    @Test func pushesInterleavedWithReplies() throws {
        let values = try parseAll(try GoldenStream.resp("pubsub-pushes").serverBytes)
        let pushes = values.filter { if case .push = $0 { return true }; return false }
        #expect(pushes.count == 3, "subscribe, message, unsubscribe")
        #expect(pushes.contains(.push([bulk("message"), bulk("fixture:channel"), bulk("hello")])))
        #expect(values.contains(simple("PONG")))
        let tracking = try parseAll(try GoldenStream.resp("tracking-invalidation").serverBytes)
        #expect(tracking.contains(.push([bulk("invalidate"), .array([bulk("fixture:tracked")])])))
    }

    @Test func resp2RepliesGoThroughTheSameParser() throws {
        let values = try parseAll(try GoldenStream.resp("resp2-replies").serverBytes)
        #expect(values.first == simple("OK"))
        #expect(values.filter { $0 == .null }.count == 2, "$-1 and *-1")
        #expect(values.contains(.array([bulk("a"), bulk("b"), bulk("c")])))
    }

    @Test(arguments: GoldenStream.respNames)
    func seededMutationsEndInAValueOrATypedError(_ name: String) throws {
        let fixture = try GoldenStream.resp(name)
        var generator = SplitMix64(seed: 0xBADC0DE ^ UInt64(name.utf8.count))
        let alphabet = Array("+-:$*%~>|_#,(!=;.?\r\n0123456789".utf8) + [0, 0xFF]
        let limits = RESPParser.Limits(maximumBulkLength: 1 << 20, maximumAggregateCount: 10_000, maximumDepth: 32, maximumLineLength: 4096)
        var outcomes = (values: 0, errors: 0)
        for _ in 0..<3_000 {
            let bytes = generator.mutate(fixture.serverBytes, alphabet: alphabet)
            do {
                outcomes.values += try parseAll(bytes, chunk: Int(generator.next() % 64 + 1), parser: RESPParser(limits: limits)).count
            } catch {
                outcomes.errors += 1
            }
        }
        #expect(outcomes.errors > 0 && outcomes.values > 0)
    }
}
