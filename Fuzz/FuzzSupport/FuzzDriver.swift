/// Runs libFuzzer with `callback` as the fuzz target. Built by `make fuzz` (with -sanitize=fuzzer
/// and -DFUZZING); in an ordinary build, which has no libFuzzer, it only says how to run it.
#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32

public func runLibFuzzer(
    _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32 {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, callback)
}
#else
public func runLibFuzzer(
    _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32 {
    print("this fuzzer runs under libFuzzer: use `make fuzz`")
    return 2
}
#endif

/// Hands `bytes` to `consume` in pieces of at most `size` bytes (the whole input for `.max`, and
/// at least one call for an empty input), as reads from a socket would; stops early when
/// `consume` returns false.
public func feedInPieces(_ bytes: [UInt8], size: Int, _ consume: (ArraySlice<UInt8>) -> Bool) {
    var offset = 0
    repeat {
        let end = Swift.min(bytes.count, offset + Swift.min(size, Swift.max(1, bytes.count)))
        guard consume(bytes[offset..<end]) else { return }
        offset = end
    } while offset < bytes.count
}
