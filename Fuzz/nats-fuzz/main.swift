// libFuzzer entry point for the NATS parser: any bytes, fed whole and then in small pieces, must
// end in operations or a NATSProtocolError — never a crash, a hang or unbounded memory. INFO
// bodies go through the INFO decoder and header blocks through the header parser, as the client
// does. Built and run by `make fuzz`.

import FuzzSupport
import NATSProto
import Transport

@_cdecl("LLVMFuzzerTestOneInput")
public func natsFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for size in [Int.max, 1, 7] {
        var parser = NATSParser(maximumControlLine: 4096, maximumPayload: 1 << 20)
        var buffer = ByteBuffer()
        feedInPieces(bytes, size: size) { piece in
            buffer.writeBytes(piece)
            do {
                while let operation = try parser.next(&buffer) {
                    switch operation {
                    case .info(let json): _ = try? NATSServerInfo(json: json)
                    case .message(let message): if let block = message.headerBlock { _ = try? NATSHeaders(parsing: block) }
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
