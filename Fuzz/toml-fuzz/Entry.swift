// libFuzzer entry point for the TOML parser and the .env reader: any bytes must end in values or a typed
// error, never a crash, a hang or unbounded memory. The target's body is FuzzTarget.toml, which the
// test suite also runs on the regression cases of Fixtures/fuzz/toml/. Built and run by `make fuzz`.

import FuzzSupport
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    FuzzTarget.toml.fuzzOne(data, size)
}

// SwiftPM links an executable's entry point as `<module>_main`.
@_cdecl("toml_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in FuzzTarget.toml.fuzzOne(data, size) }
}
