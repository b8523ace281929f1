#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A growable byte buffer with separate reader and writer indices.
///
/// Bytes are appended at `writerIndex` and consumed from `readerIndex`. Slices share the storage
/// until one side is mutated (copy on write), so framing code can hand out payloads without copying.
/// Consumed bytes are reclaimed by ``compact()``, which moves the unread tail only when at least
/// half of the storage has been consumed; every byte is therefore moved an amortized constant
/// number of times, however the reads and writes interleave.
public struct ByteBuffer: Sendable {
    @usableFromInline var storage: [UInt8]
    @usableFromInline var _readerIndex: Int
    @usableFromInline var _writerIndex: Int
    /// Shared by a buffer and its slices: while a slice lives, this buffer's next write moves only
    /// its unread bytes to new storage instead of letting the array copy all of its capacity.
    @usableFromInline var owner: StorageOwner

    /// Index of the next byte to read.
    @inlinable public var readerIndex: Int { _readerIndex }
    /// Index where the next written byte goes.
    @inlinable public var writerIndex: Int { _writerIndex }

    /// Creates an empty buffer with room for `capacity` bytes.
    public init(capacity: Int = 0) {
        storage = [UInt8](repeating: 0, count: max(0, capacity))
        owner = StorageOwner()
        _readerIndex = 0
        _writerIndex = 0
    }

    /// Creates a buffer whose readable bytes are `bytes`.
    public init<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        storage = Array(bytes)
        owner = StorageOwner()
        _readerIndex = 0
        _writerIndex = storage.count
    }

    /// Creates a buffer whose readable bytes are the UTF-8 encoding of `string`.
    public init(string: String) {
        self.init(bytes: Array(string.utf8))
    }

    @usableFromInline init(storage: [UInt8], owner: StorageOwner, readerIndex: Int, writerIndex: Int) {
        self.storage = storage
        self.owner = owner
        self._readerIndex = readerIndex
        self._writerIndex = writerIndex
    }

    /// Number of bytes that can be read.
    @inlinable
    public var readableBytes: Int { writerIndex - readerIndex }
    /// Number of bytes that can be written without growing the storage.
    @inlinable
    public var writableBytes: Int { storage.count - writerIndex }
    /// Total bytes allocated.
    @inlinable
    public var capacity: Int { storage.count }
    /// Whether there is nothing left to read.
    @inlinable
    public var isEmpty: Bool { writerIndex == readerIndex }

    /// The readable bytes as a collection that shares this buffer's storage.
    @inlinable
    public var readableBytesView: ArraySlice<UInt8> { storage[readerIndex..<writerIndex] }

    // MARK: - Capacity

    /// Makes sure at least `count` bytes can be written, compacting before growing.
    /// Growth doubles the capacity and carries over only the unread bytes.
    @inlinable
    public mutating func reserveWritableBytes(_ count: Int) {
        precondition(count >= 0, "negative reservation")
        if !isKnownUniquelyReferenced(&owner) {
            reallocate(capacity: Swift.max(storage.count, readableBytes + count))
            return
        }
        if writableBytes >= count { return }
        compact()
        if writableBytes >= count { return }
        let needed = readableBytes + count
        var newCapacity = Swift.max(64, storage.count)
        while newCapacity < needed { newCapacity = newCapacity &* 2 }
        reallocate(capacity: newCapacity)
    }

    /// Moves the unread bytes to the front of new storage of `newCapacity` bytes, owned alone.
    @usableFromInline
    mutating func reallocate(capacity newCapacity: Int) {
        let unread = readableBytes
        let start = readerIndex
        let old = storage
        storage = [UInt8](unsafeUninitializedCapacity: newCapacity) { target, initialized in
            guard let base = target.baseAddress else { return }
            old.withUnsafeBytes { source in
                if unread > 0, let from = source.baseAddress { memcpy(base, from + start, unread) }
            }
            memset(base + unread, 0, newCapacity - unread)
            initialized = newCapacity
        }
        _readerIndex = 0
        _writerIndex = unread
        owner = StorageOwner()
    }

    /// Makes this buffer the only owner of its storage before a write, moving only the unread
    /// bytes when a slice still shares it.
    @inlinable
    mutating func makeStorageUnique() {
        if !isKnownUniquelyReferenced(&owner) { reallocate(capacity: storage.count) }
    }

    /// Reclaims consumed bytes. Moves the unread bytes to the front only when at least half of
    /// the storage has been consumed, which keeps the total cost of compaction linear.
    public mutating func compact() {
        if readerIndex == 0 { return }
        if readerIndex == writerIndex {
            _readerIndex = 0
            _writerIndex = 0
            return
        }
        guard readerIndex >= storage.count / 2 else { return }
        if !isKnownUniquelyReferenced(&owner) {
            reallocate(capacity: storage.count)
            return
        }
        let count = readableBytes
        let from = readerIndex
        storage.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            (base).copyMemory(from: base + from, byteCount: count)
        }
        _readerIndex = 0
        _writerIndex = count
    }

    /// Drops all bytes, keeping the allocation when this buffer is its only owner.
    public mutating func clear() {
        _readerIndex = 0
        _writerIndex = 0
    }

    // MARK: - Raw access

    /// Calls `body` with the writable region (at least `minimumCount` bytes); `body` returns how
    /// many bytes it wrote, and the writer index moves by that much.
    @inlinable
    public mutating func writeWithUnsafeMutableBytes<E: Error>(
        minimumWritableBytes minimumCount: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int
    ) throws(E) -> Int {
        reserveWritableBytes(minimumCount)
        let start = writerIndex
        let result: Result<Int, E> = storage.withUnsafeMutableBytes { raw in
            let region = UnsafeMutableRawBufferPointer(rebasing: raw[start...])
            do throws(E) { return .success(try body(region)) } catch { return .failure(error) }
        }
        let written = try result.get()
        precondition(written >= 0 && written <= storage.count - start, "wrote outside the writable region")
        _writerIndex += written
        return written
    }

    /// Calls `body` with the readable bytes.
    @inlinable
    public func withUnsafeReadableBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        let range = readerIndex..<writerIndex
        let result: Result<R, E> = storage.withUnsafeBytes { raw in
            do throws(E) { return .success(try body(UnsafeRawBufferPointer(rebasing: raw[range]))) } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Moves the reader index forward by `count` readable bytes.
    @inlinable
    public mutating func moveReaderIndex(forwardBy count: Int) {
        precondition(count >= 0 && count <= readableBytes, "moved the reader past the readable bytes")
        _readerIndex += count
    }

    /// Moves the reader index back to `index`, which must lie between 0 and the writer index.
    /// Decoders use it to rewind when a frame turns out to be incomplete.
    public mutating func moveReaderIndex(to index: Int) {
        precondition(index >= 0 && index <= writerIndex, "reader index outside the buffer")
        _readerIndex = index
    }

    /// Drops written bytes beyond the first `count` readable ones: the way to roll back a partly
    /// written message, since writes may move the readable bytes (so absolute indices go stale).
    public mutating func truncate(toReadableBytes count: Int) {
        precondition(count >= 0 && count <= readableBytes, "truncation beyond the readable bytes")
        _writerIndex = readerIndex + count
    }

    /// Moves the writer index back to `index` (dropping written but unread bytes after it).
    public mutating func moveWriterIndex(to index: Int) {
        precondition(index >= readerIndex && index <= storage.count, "writer index outside the buffer")
        _writerIndex = index
    }

    // MARK: - Writing

    /// Appends `bytes`.
    @inlinable
    public mutating func writeBytes<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let count = bytes.count
        if count == 0 { return }
        if writableBytes < count { reserveWritableBytes(count) } else { makeStorageUnique() }
        let start = writerIndex
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { source in
            storage.withUnsafeMutableBytes { raw in
                guard let target = raw.baseAddress, let from = source.baseAddress else { return }
                (target + start).copyMemory(from: from, byteCount: count)
            }
            return true
        }
        if copied == nil {
            var index = start
            for byte in bytes {
                storage[index] = byte
                index += 1
            }
        }
        _writerIndex += count
    }

    /// Appends the readable bytes of `other` without consuming them.
    @inlinable
    public mutating func writeBuffer(_ other: ByteBuffer) {
        writeBytes(other.readableBytesView)
    }

    /// Appends the UTF-8 bytes of `string`; returns how many were written.
    @discardableResult
    public mutating func writeString(_ string: String) -> Int {
        var string = string
        return string.withUTF8 { utf8 in
            writeBytes(utf8)
            return utf8.count
        }
    }

    /// Appends the UTF-8 bytes of `string` and a terminating NUL.
    /// A string that itself contains NUL cannot be represented; it is refused.
    public mutating func writeCString(_ string: String) throws(ByteBufferError) {
        var string = string
        let containsNUL = string.withUTF8 { $0.contains(0) }
        if containsNUL { throw ByteBufferError.nulInCString }
        writeString(string)
        writeInteger(UInt8(0))
    }

    /// Appends the decimal digits of `value` (with a leading `-` when negative), as the text
    /// protocols write lengths and counts; no allocation.
    public mutating func writeDecimal(_ value: Int64) {
        if value == 0 {
            writeInteger(UInt8(ascii: "0"))
            return
        }
        var magnitude = value.magnitude
        if value < 0 { writeInteger(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for UInt64.max's 20 digits
        withUnsafeMutableBytes(of: &digits) { raw in
            var count = 0
            while magnitude > 0 {
                raw[23 - count] = UInt8(magnitude % 10) + UInt8(ascii: "0")
                magnitude /= 10
                count += 1
            }
            writeBytes(UnsafeRawBufferPointer(rebasing: raw[(24 - count)...]))
        }
    }

    /// Appends `count` copies of `byte`.
    public mutating func writeRepeating(_ byte: UInt8, count: Int) {
        guard count > 0 else { return }
        reserveWritableBytes(count)
        let start = writerIndex
        storage.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            _ = memset(base + start, Int32(byte), count)
        }
        _writerIndex += count
    }

    /// Appends an integer in the given byte order (network order by default).

    @inlinable
    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T, endianness: Endianness = .big) {
        let size = MemoryLayout<T>.size
        if writableBytes < size { reserveWritableBytes(size) } else { makeStorageUnique() }
        let encoded = endianness == .big ? value.bigEndian : value.littleEndian
        let start = writerIndex
        storage.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: encoded, toByteOffset: start, as: T.self)
        }
        _writerIndex += size
    }

    /// Overwrites an integer at an absolute index that was already written.

    @inlinable
    public mutating func setInteger<T: FixedWidthInteger>(_ value: T, at index: Int, endianness: Endianness = .big) {
        let size = MemoryLayout<T>.size
        // Unsharing moves the unread bytes to the front: keep the index on the same byte.
        let fromReader = index - readerIndex
        makeStorageUnique()
        let index = readerIndex + fromReader
        precondition(index >= 0 && index + size <= writerIndex, "setInteger outside the written bytes")
        let encoded = endianness == .big ? value.bigEndian : value.littleEndian
        storage.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: encoded, toByteOffset: index, as: T.self)
        }
    }

    /// Starts a length-prefixed frame: reserves room for a `T` length and returns its position.
    @inlinable
    public mutating func beginLengthPrefix<T: FixedWidthInteger>(_ type: T.Type) -> LengthPrefixMark<T> {
        let offset = writerIndex - readerIndex
        writeInteger(T(0))
        return LengthPrefixMark(offsetFromReader: offset)
    }

    /// Ends a frame started with ``beginLengthPrefix(_:)``. The length counts the bytes after the
    /// prefix, plus the prefix itself when `includingPrefix` is true (PostgreSQL's convention).
    @inlinable
    public mutating func finishLengthPrefix<T: FixedWidthInteger>(
        _ mark: LengthPrefixMark<T>, includingPrefix: Bool
    ) throws(ByteBufferError) {
        let position = readerIndex + mark.offsetFromReader
        var length = writerIndex - position
        if !includingPrefix { length -= MemoryLayout<T>.size }
        guard let value = T(exactly: length) else { throw ByteBufferError.frameTooLarge(length) }
        setInteger(value, at: position)
    }

    // MARK: - Reading

    /// Returns the integer at `readerIndex + offset` without consuming it, or nil if not all of it has arrived.

    @inlinable
    public func getInteger<T: FixedWidthInteger>(
        at offset: Int = 0, as type: T.Type = T.self, endianness: Endianness = .big
    ) -> T? {
        let size = MemoryLayout<T>.size
        guard offset >= 0, readableBytes - offset >= size else { return nil }
        let start = readerIndex + offset
        let raw = storage.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: start, as: T.self) }
        return endianness == .big ? T(bigEndian: raw) : T(littleEndian: raw)
    }

    /// Reads and consumes an integer, or returns nil (consuming nothing) if not all of it has arrived.

    @inlinable
    public mutating func readInteger<T: FixedWidthInteger>(
        as type: T.Type = T.self, endianness: Endianness = .big
    ) -> T? {
        guard let value = getInteger(as: T.self, endianness: endianness) else { return nil }
        _readerIndex += MemoryLayout<T>.size
        return value
    }

    /// Reads and consumes `count` bytes as an array, or nil if fewer are readable.
    public mutating func readBytes(count: Int) -> [UInt8]? {
        guard count >= 0, readableBytes >= count else { return nil }
        let bytes = Array(storage[readerIndex..<readerIndex + count])
        _readerIndex += count
        return bytes
    }

    /// Reads and consumes `count` bytes as a buffer that shares this buffer's storage (no copy).
    @inlinable
    public mutating func readSlice(count: Int) -> ByteBuffer? {
        guard let slice = getSlice(at: 0, count: count) else { return nil }
        _readerIndex += count
        return slice
    }

    /// Returns `count` bytes starting `offset` bytes after the reader index, sharing storage, or nil.
    @inlinable
    public func getSlice(at offset: Int, count: Int) -> ByteBuffer? {
        guard offset >= 0, count >= 0, readableBytes - offset >= count else { return nil }
        let start = readerIndex + offset
        return ByteBuffer(storage: storage, owner: owner, readerIndex: start, writerIndex: start + count)
    }

    /// Reads and consumes `count` bytes decoded as UTF-8 (invalid sequences are repaired), or nil.
    public mutating func readString(count: Int) -> String? {
        guard count >= 0, readableBytes >= count else { return nil }
        let start = readerIndex
        let string = storage.withUnsafeBytes { raw in
            String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<start + count]), as: UTF8.self)
        }
        _readerIndex += count
        return string
    }

    /// Offset from the reader index of the first `byte`, searching at most `limit` bytes; nil if absent.
    public func firstIndex(of byte: UInt8, searchingAtMost limit: Int = .max) -> Int? {
        firstIndex(of: byte, from: 0, searchingAtMost: limit)
    }

    /// Offset from the reader index of the first `byte` at or after offset `from`, searching at
    /// most `limit` bytes from there; nil if absent. Lets a scan resume where it stopped.
    public func firstIndex(of byte: UInt8, from offset: Int, searchingAtMost limit: Int = .max) -> Int? {
        let from = Swift.max(0, Swift.min(offset, readableBytes))
        let end = readerIndex + from + Swift.min(readableBytes - from, Swift.max(0, limit))
        let start = readerIndex + from
        let reader = readerIndex
        return storage.withUnsafeBytes { raw -> Int? in
            guard let base = raw.baseAddress, end > start else { return nil }
            guard let found = memchr(base + start, Int32(byte), end - start) else { return nil }
            return UnsafeRawPointer(found) - (base + reader)
        }
    }

    /// Reads a NUL-terminated string and consumes it with its terminator.
    /// Returns nil, consuming nothing, when no NUL is readable yet; throws when no NUL appears within
    /// `maximumLength` bytes.
    public mutating func readCString(maximumLength: Int = .max) throws(ByteBufferError) -> String? {
        guard let end = firstIndex(of: 0, searchingAtMost: maximumLength) else {
            if readableBytes >= maximumLength { throw ByteBufferError.cStringTooLong(limit: maximumLength) }
            return nil
        }
        let string = readString(count: end)
        _readerIndex += 1
        return string
    }

    /// Reads a frame preceded by a `T` length that counts only the bytes after it.
    /// Returns nil (consuming nothing) until the whole frame is readable; throws when the announced
    /// length is negative or larger than `maximumLength`.
    public mutating func readLengthPrefixedSlice<T: FixedWidthInteger>(
        _ type: T.Type, maximumLength: Int
    ) throws(ByteBufferError) -> ByteBuffer? {
        guard let length = getInteger(as: T.self) else { return nil }
        guard length >= 0, let count = Int(exactly: length), count <= maximumLength else {
            throw ByteBufferError.frameLengthOutOfBounds(announced: Int64(truncatingIfNeeded: length), limit: maximumLength)
        }
        let size = MemoryLayout<T>.size
        guard readableBytes - size >= count else { return nil }
        _readerIndex += size
        return readSlice(count: count)
    }
}

/// Byte order of an integer on the wire.
public enum Endianness: Sendable {
    /// Most significant byte first (network order).
    case big
    /// Least significant byte first.
    case little
}

/// The position of a length prefix reserved with ``ByteBuffer/beginLengthPrefix(_:)``.
/// It is kept relative to the reader index, so it stays valid when growth compacts the buffer;
/// nothing may be read from the buffer between begin and finish.
public struct LengthPrefixMark<T: FixedWidthInteger>: Sendable {
    /// Distance of the prefix from the reader index.
    public let offsetFromReader: Int

    @usableFromInline init(offsetFromReader: Int) {
        self.offsetFromReader = offsetFromReader
    }
}

/// Malformed or out-of-bounds data met while encoding or decoding a buffer.
public enum ByteBufferError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A string to be written as a C string contains a NUL byte.
    case nulInCString
    /// No NUL terminator within the allowed length.
    case cStringTooLong(limit: Int)
    /// A frame announced a length that is negative or above the limit.
    case frameLengthOutOfBounds(announced: Int64, limit: Int)
    /// A frame is too long for its length prefix.
    case frameTooLarge(Int)

    public var description: String {
        switch self {
        case .nulInCString: "string contains a NUL byte and cannot be sent as a C string"
        case .cStringTooLong(let limit): "no NUL terminator within \(limit) bytes"
        case .frameLengthOutOfBounds(let announced, let limit):
            "frame announces \(announced) bytes; allowed are 0...\(limit)"
        case .frameTooLarge(let length): "frame of \(length) bytes does not fit its length prefix"
        }
    }
}

extension ByteBuffer: Equatable {
    /// Two buffers are equal when their readable bytes are.
    public static func == (lhs: ByteBuffer, rhs: ByteBuffer) -> Bool {
        lhs.readableBytesView.elementsEqual(rhs.readableBytesView)
    }
}

extension ByteBuffer: Hashable {
    public func hash(into hasher: inout Hasher) {
        withUnsafeReadableBytes { hasher.combine(bytes: $0) }
    }
}

extension ByteBuffer: CustomStringConvertible {
    /// A short hex dump of the readable bytes.
    public var description: String {
        let shown = readableBytesView.prefix(64).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }
        let suffix = readableBytes > 64 ? " … (\(readableBytes) bytes)" : ""
        return "ByteBuffer[" + shown.joined(separator: " ") + suffix + "]"
    }
}

/// The token a buffer and its slices share, to tell whether a write would disturb a slice.
@usableFromInline
final class StorageOwner: Sendable {
    @usableFromInline init() {}
}
