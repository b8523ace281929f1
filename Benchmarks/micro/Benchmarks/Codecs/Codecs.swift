// The parsers and encoders on their hot paths. An iteration handles 1,000 messages, so the figures
// are per 1,000 messages: a per-message allocation count would be rounded to a whole number and
// hide a fraction. Inputs are built once, outside the measurement; each iteration reads a fresh
// view of them (a ByteBuffer copy shares its storage, so no bytes move). Names have no spaces: the
// thresholds check looks its files up by the name as written.
//
// Allocations per message are what `make bench-check` holds to Thresholds/: an extra allocation on
// a hot path fails it, while time, which moves with the machine, is only reported.

import Benchmark
import Foundation
import NATSProto
import PGWire
import RESP
import Settings
import Transport

struct BenchmarkInputError: Error, CustomStringConvertible {
    let description: String
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        scalingFactor: .one,
        maxDuration: .seconds(2),
        maxIterations: 10_000,
        thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p90: 0])]
    )

    // MARK: RESP3

    /// 1,000 replies as a SET / GET / LRANGE mix sends them: +OK, a 3-byte bulk, an integer and
    /// an array of ten bulks, in turn.
    let respReplies: ByteBuffer = {
        var buffer = ByteBuffer()
        for index in 0..<1000 {
            switch index % 4 {
            case 0: buffer.writeString("+OK\r\n")
            case 1: buffer.writeString("$3\r\nxyz\r\n")
            case 2: buffer.writeString(":\(index)\r\n")
            default:
                buffer.writeString("*10\r\n")
                for item in 0..<10 { buffer.writeString("$6\r\nitem-\(item)\r\n") }
            }
        }
        return buffer
    }()

    Benchmark("RESP3.parse.replies-1000") { benchmark in
        for _ in benchmark.scaledIterations {
            var parser = RESPParser()
            var stream = respReplies
            while let message = try parser.next(&stream) { blackHole(message) }
        }
    }

    /// `+OK` alone: the reply of a pipelined SET.
    let okReplies: ByteBuffer = {
        var buffer = ByteBuffer()
        for _ in 0..<1000 { buffer.writeString("+OK\r\n") }
        return buffer
    }()

    Benchmark("RESP3.parse.OK-1000") { benchmark in
        for _ in benchmark.scaledIterations {
            var parser = RESPParser()
            var stream = okReplies
            while let message = try parser.next(&stream) { blackHole(message) }
        }
    }

    let setArguments: [RESPArgument] = ["SET", "key:000042", .bytes(ByteBuffer(bytes: Array(repeating: UInt8(ascii: "x"), count: 3)))]

    Benchmark("RESP3.encode.SET-1000") { benchmark in
        var buffer = ByteBuffer(capacity: 64 << 10)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.clear()
            for _ in 0..<1000 { RESPCommandEncoder.encode(setArguments, into: &buffer) }
            blackHole(buffer.readableBytes)
        }
    }

    // MARK: NATS

    /// 1,000 MSG of 16 bytes on a subscription, every fourth with a reply subject.
    let natsMessages: ByteBuffer = {
        var buffer = ByteBuffer()
        let payload = String(repeating: "p", count: 16)
        for index in 0..<1000 {
            if index % 4 == 0 {
                buffer.writeString("MSG jobs.transcribe.audio 7 _INBOX.abcdefghijklmnopqrstuv.\(index) 16\r\n\(payload)\r\n")
            } else {
                buffer.writeString("MSG jobs.transcribe.audio 7 16\r\n\(payload)\r\n")
            }
        }
        return buffer
    }()

    Benchmark("NATS.parse.MSG-1000") { benchmark in
        for _ in benchmark.scaledIterations {
            var parser = NATSParser()
            var stream = natsMessages
            while let message = try parser.next(&stream) { blackHole(message) }
        }
    }

    /// 1,000 HMSG with two headers, as JetStream delivers them.
    let natsHeaderMessages: ByteBuffer = {
        var buffer = ByteBuffer()
        let headers = "NATS/1.0\r\nNats-Msg-Id: job-000042\r\nTrace: 00-0af7651916cd43dd-01\r\n\r\n"
        let payload = String(repeating: "p", count: 16)
        for _ in 0..<1000 {
            buffer.writeString("HMSG tasks.transcribe 9 $JS.ACK.TASKS.workers.1.42.42.1700000000000000000.0 \(headers.utf8.count) \(headers.utf8.count + 16)\r\n\(headers)\(payload)\r\n")
        }
        return buffer
    }()

    Benchmark("NATS.parse.HMSG-1000") { benchmark in
        for _ in benchmark.scaledIterations {
            var parser = NATSParser()
            var stream = natsHeaderMessages
            while let message = try parser.next(&stream) { blackHole(message) }
        }
    }

    let natsPayload = Array(repeating: UInt8(ascii: "p"), count: 16)

    Benchmark("NATS.encode.PUB-1000") { benchmark in
        var buffer = ByteBuffer(capacity: 64 << 10)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.clear()
            for _ in 0..<1000 { try NATSClientOperation.publish(subject: "jobs.transcribe.audio", payload: natsPayload, into: &buffer) }
            blackHole(buffer.readableBytes)
        }
    }

    // MARK: PostgreSQL

    /// 1,000 DataRow messages of (int8, text, timestamptz), binary, as a fetch receives them.
    let dataRows: ByteBuffer = {
        var buffer = ByteBuffer()
        for index in 0..<1000 {
            let text = Array("name-\(index)".utf8)
            var body: [UInt8] = [0, 3]
            func cell(_ bytes: [UInt8]) { body += withUnsafeBytes(of: Int32(bytes.count).bigEndian, Array.init) + bytes }
            cell(withUnsafeBytes(of: Int64(index).bigEndian, Array.init))
            cell(text)
            cell(withUnsafeBytes(of: Int64(752_000_000_000_000 + index).bigEndian, Array.init))
            buffer.writeBytes([UInt8(ascii: "D")] + withUnsafeBytes(of: Int32(body.count + 4).bigEndian, Array.init) + body)
        }
        return buffer
    }()

    Benchmark("PostgreSQL.decode.DataRow-1000") { benchmark in
        for _ in benchmark.scaledIterations {
            var decoder = BackendMessageDecoder()
            var stream = dataRows
            while let message = try decoder.decode(&stream) { blackHole(message) }
        }
    }

    Benchmark("PostgreSQL.decode.DataRow-to-Int-String-Date-1000") { benchmark in
        for _ in benchmark.scaledIterations {
            var decoder = BackendMessageDecoder()
            var stream = dataRows
            while let message = try decoder.decode(&stream) {
                guard case .dataRow(let row) = message, let id = row[0], let name = row[1], let at = row[2] else {
                    throw BenchmarkInputError(description: "the benchmark's rows are DataRows of three cells")
                }
                blackHole(try Int(postgresCell: id, type: .int8, isBinary: true))
                blackHole(try String(postgresCell: name, type: .text, isBinary: true))
                blackHole(try Date(postgresCell: at, type: .timestamptz, isBinary: true))
            }
        }
    }

    Benchmark("PostgreSQL.encode.Query-1000") { benchmark in
        var buffer = ByteBuffer(capacity: 64 << 10)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.clear()
            for _ in 0..<1000 { try FrontendMessage.query("SELECT id, name FROM jobs WHERE id = 42", into: &buffer) }
            blackHole(buffer.readableBytes)
        }
    }

    // MARK: Settings

    /// The project's settings.toml (four folders up from this file), one parse per iteration.
    let settingsPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("settings.toml").path
    let settingsDocument = FileManager.default.contents(atPath: settingsPath).map(Array.init) ?? []

    Benchmark("TOML.parse.settings-toml", configuration: .init(scalingFactor: .one)) { benchmark in
        guard !settingsDocument.isEmpty else { throw BenchmarkInputError(description: "no settings.toml at \(settingsPath)") }
        for _ in benchmark.scaledIterations {
            blackHole(try TOML.parse(bytes: settingsDocument))
        }
    }
}
