// libFuzzer entry point for what JetStream reads from the server: any bytes decoded as each API
// answer (stream and consumer info, PubAck, account info, an object's meta) and read as an ack
// subject must end in a value or a typed error — never a crash, a hang or unbounded memory.
// Built and run by `make fuzz`.

import FuzzSupport
import Foundation
import JetStream

@_cdecl("LLVMFuzzerTestOneInput")
public func jetStreamFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    let decoder = JSONDecoder()
    _ = try? decoder.decode(StreamInfo.self, from: bytes)
    _ = try? decoder.decode(ConsumerInfo.self, from: bytes)
    _ = try? decoder.decode(PubAck.self, from: bytes)
    _ = try? decoder.decode(AccountInfo.self, from: bytes)
    _ = try? decoder.decode(ObjectInfo.self, from: bytes)
    if size < 4096 { _ = try? MessageMetadata(ackSubject: String(decoding: bytes, as: UTF8.self)) }
    return 0
}

// SwiftPM links an executable's entry point as `<module>_main`.
@_cdecl("jetstream_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in jetStreamFuzz(data, size) }
}
