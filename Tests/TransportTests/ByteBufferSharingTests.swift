import Testing
@testable import Transport

@Suite("ByteBuffer storage sharing")
struct ByteBufferSharingTests {
    @Test func aWriteWhileASliceLivesMovesOnlyTheUnreadBytesAndLeavesTheSliceIntact() {
        var buffer = ByteBuffer(capacity: 1024)
        buffer.writeBytes(Array(repeating: UInt8(7), count: 600))
        buffer.writeBytes([1, 2, 3])
        buffer.moveReaderIndex(forwardBy: 600)
        let slice = buffer.getSlice(at: 0, count: 3)
        buffer.writeInteger(UInt8(4))
        #expect(slice.map { Array($0.readableBytesView) } == [1, 2, 3])
        #expect(Array(buffer.readableBytesView) == [1, 2, 3, 4])
        #expect(buffer.readerIndex == 0)  // only the four unread bytes were carried over
        #expect(buffer.capacity == 1024)
    }

    @Test func setIntegerAndTruncationKeepTheirPlaceWhenTheStorageMoves() {
        var buffer = ByteBuffer(capacity: 64)
        buffer.writeBytes(Array(repeating: UInt8(0), count: 40))
        buffer.moveReaderIndex(forwardBy: 40)
        let mark = buffer.beginLengthPrefix(Int32.self)
        let kept = buffer.readableBytes
        let slice = buffer.getSlice(at: 0, count: 4)
        buffer.writeBytes([9, 9])
        #expect((try? buffer.finishLengthPrefix(mark, includingPrefix: false)) != nil)
        #expect(Array(buffer.readableBytesView) == [0, 0, 0, 2, 9, 9])
        buffer.truncate(toReadableBytes: kept)
        #expect(buffer.readableBytes == 4)
        #expect(slice?.readableBytes == 4)
    }
}
