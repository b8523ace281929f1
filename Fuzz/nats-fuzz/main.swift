// libFuzzer entry point for the NATS parser: any bytes, fed whole and then in varying small pieces, must
// end in operations or a NATSProtocolError — never a crash, a hang or unbounded memory. INFO
// bodies go through the INFO decoder and header blocks through the header parser, as the client
// does. Built and run by `make fuzz`.

import FuzzSupport
import NATSProto
import Transport

@_cdecl("LLVMFuzzerTestOneInput")
public func natsFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for size in [Int.max, 0] {
        var parser = NATSParser(maximumControlLine: 4096, maximumPayload: 1 << 20)
        var buffer = ByteBuffer()
        // Whole, then in varying small pieces (0 stands for those).
        let feed: ((ArraySlice<UInt8>) -> Bool) -> Void = size == 0 ? { feedInVaryingPieces(bytes, $0) } : { feedInPieces(bytes, size: size, $0) }
        feed { piece in
            buffer.writeBytes(piece)
            do {
                while let operation = try parser.next(&buffer) {
                    switch operation {
                    // The decoders run once, on the whole feed; the split feed checks the framing.
                    case .info(let json) where size == Int.max: _ = try? NATSServerInfo(json: json)
                    case .message(let message) where size == Int.max:
                        if let block = message.headerBlock { _ = try? NATSHeaders(parsing: block) }
                    default: break
                    }
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

// SwiftPM links an executable's entry point as `<module>_main`.
@_cdecl("nats_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in natsFuzz(data, size) }
}
