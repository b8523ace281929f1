// libFuzzer entry point for the TOML parser and the .env reader: any bytes end in a value or a
// typed error. Built and run by `make fuzz`.

import Infra

@_cdecl("LLVMFuzzerTestOneInput")
public func tomlFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? TOML.parse(bytes: bytes)
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? TOML.parseValue(text)
    _ = DotEnv(parsing: text).resolved(environment: [:])
    return 0
}

// SwiftPM links an executable's entry point as `<module>_main`. Built by `make fuzz` (with
// -sanitize=fuzzer and -DFUZZING) it hands control to libFuzzer's driver; in an ordinary build,
// which has no libFuzzer, it only says how to run it.
#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32

@_cdecl("toml_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in tomlFuzz(data, size) }
}
#else
@_cdecl("toml_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    print("this fuzzer runs under libFuzzer: use `make fuzz`")
    return 2
}
#endif
