import Transport

/// 'G', 'H', 'W': a COPY started; the overall format and each column's.
public struct CopyResponse: Sendable, Equatable {
    /// Whether the copy is binary (otherwise text or CSV, row by row).
    public var isBinary: Bool
    /// Per column: true for binary.
    public var columnFormats: [Bool]

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> CopyResponse {
        let overall = try body.readBody(Int8.self, "copy format")
        guard overall == 0 || overall == 1 else { throw MalformedMessage("copy format \(overall) is neither 0 nor 1") }
        let count = try body.readBodyCount("column count", minimumBytesEach: 2)
        var formats: [Bool] = []
        formats.reserveCapacity(count)
        for _ in 0..<count {
            let format = try body.readBody(Int16.self, "column format")
            guard format == 0 || format == 1 else { throw MalformedMessage("column format \(format) is neither 0 nor 1") }
            formats.append(format == 1)
        }
        return CopyResponse(isBinary: overall == 1, columnFormats: formats)
    }
}
