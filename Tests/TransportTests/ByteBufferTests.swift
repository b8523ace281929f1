import Testing
@testable import Transport

@Suite("ByteBuffer")
struct ByteBufferTests {
    @Test func integersRoundTripInBothByteOrders() throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(0xAB))
        buffer.writeInteger(Int16(-2))
        buffer.writeInteger(UInt32(0x0102_0304))
        buffer.writeInteger(Int64.min)
        buffer.writeInteger(UInt32(0x0102_0304), endianness: .little)
        #expect(buffer.readableBytes == 1 + 2 + 4 + 8 + 4)
        #expect(Array(buffer.readableBytesView.dropFirst(3).prefix(4)) == [1, 2, 3, 4])
        #expect(buffer.readInteger(as: UInt8.self) == 0xAB)
        #expect(buffer.readInteger(as: Int16.self) == -2)
        #expect(buffer.readInteger(as: UInt32.self) == 0x0102_0304)
        #expect(buffer.readInteger(as: Int64.self) == Int64.min)
        #expect(Array(buffer.readableBytesView) == [4, 3, 2, 1])
        #expect(buffer.readInteger(as: UInt32.self, endianness: .little) == 0x0102_0304)
        #expect(buffer.isEmpty)
    }

    @Test func incompleteIntegerConsumesNothing() {
        var buffer = ByteBuffer(bytes: [0, 0, 1])
        #expect(buffer.readInteger(as: UInt32.self) == nil)
        #expect(buffer.readerIndex == 0)
        buffer.writeInteger(UInt8(2))
        #expect(buffer.readInteger(as: UInt32.self) == 258)
    }

    @Test func cStrings() throws {
        var buffer = ByteBuffer()
        try buffer.writeCString("user")
        try buffer.writeCString("")
        #expect(Array(buffer.readableBytesView) == Array("user\0\0".utf8))
        #expect(try buffer.readCString() == "user")
        #expect(try buffer.readCString() == "")
        #expect(try buffer.readCString() == nil)
        #expect(throws: ByteBufferError.nulInCString) { try buffer.writeCString("a\0b") }
        var unterminated = ByteBuffer(string: "abcdefgh")
        #expect(throws: ByteBufferError.cStringTooLong(limit: 4)) { try unterminated.readCString(maximumLength: 4) }
        #expect(try unterminated.readCString(maximumLength: 100) == nil)
        #expect(unterminated.readableBytes == 8)
    }

    @Test func lengthPrefixIncludingAndExcludingItself() throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(ascii: "Q"))
        let mark = buffer.beginLengthPrefix(Int32.self)
        try buffer.writeCString("SELECT 1")
        try buffer.finishLengthPrefix(mark, includingPrefix: true)
        let length: Int32? = buffer.getInteger(at: 1)
        #expect(length == Int32(13), "\(buffer)")  // the 4-byte length and "SELECT 1" with its NUL

        var frame = ByteBuffer()
        let inner = frame.beginLengthPrefix(UInt16.self)
        frame.writeString("hello")
        try frame.finishLengthPrefix(inner, includingPrefix: false)
        let payload = try frame.readLengthPrefixedSlice(UInt16.self, maximumLength: 100)
        #expect(payload == ByteBuffer(string: "hello"))
        #expect(frame.isEmpty)
    }

    @Test func lengthPrefixSurvivesGrowthAndCompaction() throws {
        var buffer = ByteBuffer(capacity: 64)
        buffer.writeRepeating(0xEE, count: 40)
        buffer.moveReaderIndex(forwardBy: 40)  // consumed bytes that growth will drop
        buffer.writeInteger(UInt8(ascii: "d"))
        let mark = buffer.beginLengthPrefix(Int32.self)
        buffer.writeRepeating(7, count: 100_000)
        try buffer.finishLengthPrefix(mark, includingPrefix: true)
        #expect(buffer.readInteger(as: UInt8.self) == UInt8(ascii: "d"))
        #expect(buffer.readInteger(as: Int32.self) == 100_004)
        #expect(buffer.readableBytes == 100_000)
    }

    @Test func lengthPrefixedFramesAreBoundedAndResumable() throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(10))
        buffer.writeString("12345")
        #expect(try buffer.readLengthPrefixedSlice(UInt32.self, maximumLength: 100) == nil)
        #expect(buffer.readerIndex == 0)
        buffer.writeString("67890")
        #expect(try buffer.readLengthPrefixedSlice(UInt32.self, maximumLength: 100) == ByteBuffer(string: "1234567890"))

        var hostile = ByteBuffer()
        hostile.writeInteger(Int32(-5))
        #expect(throws: ByteBufferError.frameLengthOutOfBounds(announced: -5, limit: 100)) {
            try hostile.readLengthPrefixedSlice(Int32.self, maximumLength: 100)
        }
        var huge = ByteBuffer()
        huge.writeInteger(UInt32.max)
        #expect(throws: ByteBufferError.frameLengthOutOfBounds(announced: Int64(UInt32.max), limit: 1 << 20)) {
            try huge.readLengthPrefixedSlice(UInt32.self, maximumLength: 1 << 20)
        }
    }

    @Test func slicesShareStorageUntilMutated() {
        var buffer = ByteBuffer(string: "header:payload")
        _ = buffer.readSlice(count: 7)
        let payload = buffer.readSlice(count: 7)
        #expect(payload == ByteBuffer(string: "payload"))
        #expect(payload?.storage === buffer.storage, "a slice must not copy the bytes")
        var mutated = payload!
        mutated.writeString("!")
        #expect(payload == ByteBuffer(string: "payload"))
        #expect(mutated == ByteBuffer(string: "payload!"))
    }

    @Test func compactionMovesOnlyWhenHalfIsConsumed() {
        var buffer = ByteBuffer(capacity: 100)
        buffer.writeRepeating(7, count: 100)
        buffer.moveReaderIndex(forwardBy: 30)
        buffer.compact()
        #expect(buffer.readerIndex == 30, "less than half consumed: nothing moves")
        buffer.moveReaderIndex(forwardBy: 30)
        buffer.compact()
        #expect(buffer.readerIndex == 0)
        #expect(buffer.readableBytes == 40)
        buffer.moveReaderIndex(forwardBy: 40)
        buffer.compact()
        #expect(buffer.writerIndex == 0, "fully consumed buffers reset without moving")
    }

    @Test func streamingThroughABufferKeepsItSmall() {
        // A reader that always lags one partial frame behind the writer: capacity stays bounded and
        // every byte is moved at most a constant number of times.
        var buffer = ByteBuffer()
        var produced = 0
        var consumed = 0
        for round in 0..<200_000 {
            buffer.writeRepeating(UInt8(truncatingIfNeeded: round), count: 100)
            produced += 100
            let take = buffer.readableBytes - 37
            buffer.moveReaderIndex(forwardBy: take)
            consumed += take
        }
        #expect(produced - consumed == 37)
        #expect(buffer.capacity <= 4096)
    }

    @Test func hexDescription() {
        #expect(ByteBuffer(bytes: [0, 15, 255]).description == "ByteBuffer[00 0f ff]")
    }
}
