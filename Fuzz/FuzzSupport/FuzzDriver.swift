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

/// Hands `bytes` to `consume` in pieces of varying sizes, mostly 1 to 16 bytes with now and then
/// a larger one, drawn from a generator seeded by the input itself (so a crash reproduces). It
/// splits at as many kinds of boundary as fixed one-byte and seven-byte feeds did, with a
/// fraction of their calls: the feeds were most of a run's time on large inputs.
public func feedInVaryingPieces(_ bytes: [UInt8], _ consume: (ArraySlice<UInt8>) -> Bool) {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
    for byte in bytes.prefix(16) { state = (state ^ UInt64(byte)) &* 0x100_0000_01B3 }
    var offset = 0
    repeat {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let draw = Int(truncatingIfNeeded: state >> 33)
        let size = draw % 8 == 0 ? 17 + draw % 240 : 1 + draw % 16
        let end = Swift.min(bytes.count, offset + size)
        guard consume(bytes[offset..<end]) else { return }
        offset = end
    } while offset < bytes.count
}
