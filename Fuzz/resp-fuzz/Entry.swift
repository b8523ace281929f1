// libFuzzer entry point for the RESP3 parser: any bytes must end in values or a typed
// error, never a crash, a hang or unbounded memory. The target's body is FuzzTarget.resp, which the
// test suite also runs on the regression cases of Fixtures/fuzz/resp/. Built and run by `make fuzz`.

import FuzzSupport
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    FuzzTarget.resp.fuzzOne(data, size)
}

// SwiftPM links an executable's entry point as `<module>_main`.
@_cdecl("resp_fuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { data, size in FuzzTarget.resp.fuzzOne(data, size) }
}
