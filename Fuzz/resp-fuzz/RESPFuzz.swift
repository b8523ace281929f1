// libFuzzer entry point for the RESP parser: any bytes, fed whole and then in small pieces,
// must end in values or a RESPProtocolError — never a crash, a hang or unbounded memory.
// Built and run by `make fuzz`.

import FuzzSupport
import RESP
import Transport

@_cdecl("LLVMFuzzerTestOneInput")
public func respFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let limits = RESPParser.Limits(maximumBulkLength: 1 << 20, maximumAggregateCount: 1 << 16, maximumDepth: 64, maximumLineLength: 1 << 16)
    for size in [Int.max, 0] {
        var parser = RESPParser(limits: limits)
        var buffer = ByteBuffer()
        // Whole, then in varying small pieces (0 stands for those).
        let feed: ((ArraySlice<UInt8>) -> Bool) -> Void = size == 0 ? { feedInVaryingPieces(bytes, $0) } : { feedInPieces(bytes, size: size, $0) }
        feed { piece in
            buffer.writeBytes(piece)
            do {
                while try parser.next(&buffer) != nil {}
            } catch {
                return false
            }
            buffer.compact()
            return true
        }
    }
    return 0
}

// SwiftPM links an executable's entry point as `<module>_main`.
@_cdecl("resp_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in respFuzz(data, size) }
}
