// libFuzzer entry point for the TOML parser and the .env reader: any bytes end in a value or a
// typed error. Built and run by `make fuzz`.

import FuzzSupport
import Settings

@_cdecl("LLVMFuzzerTestOneInput")
public func tomlFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? TOML.parse(bytes: bytes)
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? TOML.parseValue(text)
    _ = DotEnv(parsing: text).resolved(environment: [:])
    return 0
}

// SwiftPM links an executable's entry point as `<module>_main`.
@_cdecl("toml_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in tomlFuzz(data, size) }
}
