import Testing
import TestSupport

@testable import RESP

@Suite("Request slots")
struct RequestSlotsTests {
    @Test func inOrderUseKeepsNothingBehind() {
        var slots = RequestSlots<String>()
        for id in UInt64(1)...1000 {
            slots[id] = "r\(id)"
            #expect(slots[id] == "r\(id)")
            slots[id] = nil
            #expect(slots[id] == nil)
            #expect(slots.isEmpty)
        }
    }

    @Test func holesLeftOutOfOrderAreDroppedWithTheOldest() {
        var slots = RequestSlots<Int>()
        for id in UInt64(10)..<15 { slots[id] = Int(id) }
        slots[12] = nil
        slots[13] = nil
        #expect(slots[12] == nil && slots[11] == 11 && slots[14] == 14)
        slots[10] = nil
        slots[11] = nil
        #expect(!slots.isEmpty && slots[14] == 14)
        slots[14] = nil
        #expect(slots.isEmpty)
        // Ids below or far above what is kept read as absent; removing them changes nothing.
        slots[20] = 20
        #expect(slots[19] == nil && slots[21] == nil && slots[UInt64.max] == nil)
        slots[3] = nil
        #expect(slots[20] == 20)
    }

    @Test func updateEachVisitsOldestFirstAndMayRemove() {
        var slots = RequestSlots<Int>()
        for id in UInt64(1)...6 { slots[id] = Int(id) }
        slots[4] = nil
        var seen: [UInt64] = []
        slots.updateEach { id, entry in
            seen.append(id)
            if id % 2 == 1 { entry = nil } else { entry = entry.map { $0 * 10 } }
        }
        #expect(seen == [1, 2, 3, 5, 6])
        #expect(slots[1] == nil && slots[2] == 20 && slots[6] == 60 && slots[5] == nil)
        slots.updateEach { _, entry in entry = nil }
        #expect(slots.isEmpty)
    }

    /// Random traffic against a dictionary: ids handed out in sequence, finished in any order,
    /// with long runs where the ring never empties (so it compacts as it goes).
    @Test func agreesWithADictionaryUnderRandomTraffic() {
        var generator = SplitMix64(seed: 0x5EED)
        var slots = RequestSlots<UInt64>()
        var model: [UInt64: UInt64] = [:]
        var next: UInt64 = 1
        for step in 0..<200_000 {
            let roll = generator.next() % 100
            if roll < 45 || model.isEmpty {
                slots[next] = next &* 3
                model[next] = next &* 3
                next += 1
            } else if roll < 85, let oldest = model.keys.min() {
                slots[oldest] = nil
                model[oldest] = nil
            } else if let any = model.keys.randomElement(using: &generator) {
                if roll < 95 {
                    slots[any] = nil
                    model[any] = nil
                } else {
                    slots[any] = 7
                    model[any] = 7
                }
            }
            if step % 97 == 0 {
                let low = next > 50 ? next - 50 : 0
                for id in low...next { #expect(slots[id] == model[id]) }
                #expect(slots.isEmpty == model.isEmpty)
            }
        }
        var visited: [UInt64: UInt64] = [:]
        slots.updateEach { id, entry in visited[id] = entry }
        #expect(visited == model)
    }
}
