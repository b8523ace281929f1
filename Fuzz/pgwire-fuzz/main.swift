// libFuzzer entry point for the PostgreSQL backend message decoder and the cell decoders: any
// bytes, fed whole and then in small pieces, must end in messages or a typed error — never a
// crash, a hang or unbounded memory. Every DataRow cell is also decoded as each supported type.
// Built and run by `make fuzz`.

import Foundation
import FuzzSupport
import PGWire
import Transport

@_cdecl("LLVMFuzzerTestOneInput")
public func pgwireFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for size in [Int.max, 0] {
        var decoder = BackendMessageDecoder(maximumMessageSize: 1 << 20)
        var buffer = ByteBuffer()
        // Whole, then in varying small pieces (0 stands for those).
        let feed: ((ArraySlice<UInt8>) -> Bool) -> Void = size == 0 ? { feedInVaryingPieces(bytes, $0) } : { feedInPieces(bytes, size: size, $0) }
        feed { piece in
            buffer.writeBytes(piece)
            do {
                while let message = try decoder.decode(&buffer) {
                    if size == Int.max, case .dataRow(let row) = message { decodeCells(row) }
                }
            } catch {
                return false
            }
            buffer.compact()
            return true
        }
    }
    return 0
}

/// Decodes every cell as every type, binary, with the type its decoder expects.
func decodeCells(_ row: DataRow) {
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

// SwiftPM links an executable's entry point as `<module>_main`.
@_cdecl("pgwire_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in pgwireFuzz(data, size) }
}
