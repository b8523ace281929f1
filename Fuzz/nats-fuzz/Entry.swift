// libFuzzer entry point for the NATS parser (INFO bodies and header blocks decoded as the client decodes them): any bytes must end in values or a typed
// error, never a crash, a hang or unbounded memory. The target's body is FuzzTarget.nats, which the
// test suite also runs on the regression cases of Fixtures/fuzz/nats/. Built and run by `make fuzz`.

import FuzzSupport
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    FuzzTarget.nats.fuzzOne(data, size)
}

// SwiftPM links an executable's entry point as `<module>_main`.
@_cdecl("nats_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in FuzzTarget.nats.fuzzOne(data, size) }
}
