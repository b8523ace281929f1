import Testing
import Transport

@testable import NATSProto

/// A subscription's pending limits, auto-unsubscribe count and end, driven message by message.
@Suite("NATS subscription state")
struct NATSSubscriptionStateTests {
    static func message(_ text: String) -> NATSMessage { NATSMessage(subject: "s", payload: ByteBuffer(string: text)) }

    @Test func pastEitherPendingLimitMessagesAreDroppedAndTheSlowConsumerReportedOncePerEpisode() {
        var state = NATSSubscriptionState(limits: NATSPendingLimits(messages: 2, bytes: 10))
        let delivery1 = state.deliver(Self.message("aaaa"))
        #expect(delivery1 == .init())
        let delivery2 = state.deliver(Self.message("bbbb"))
        #expect(delivery2 == .init())
        let delivery3 = state.deliver(Self.message("c"))
        #expect(delivery3 == .init(becameSlow: true), "over the message limit")
        let delivery4 = state.deliver(Self.message("d"))
        #expect(delivery4 == .init(), "the same episode: reported once")
        #expect(state.dropped == 2 && state.delivered == 4)
        var batch: [NATSMessage] = []
        let taken5 = state.take(into: &batch)
        #expect(taken5 == .messages)
        #expect(batch.map(\.text) == ["aaaa", "bbbb"])
        let delivery6 = state.deliver(Self.message("eeeeeeeeeee"))
        #expect(delivery6 == .init(becameSlow: true), "11 bytes: over the byte limit, a new episode")
        let delivery7 = state.deliver(Self.message("ff"))
        #expect(delivery7 == .init())
    }

    @Test func unlimitedPendingKeepsEverything() {
        var state = NATSSubscriptionState(limits: NATSPendingLimits(messages: -1, bytes: -1))
        for index in 0..<10_000 { _ = state.deliver(Self.message("\(index)")) }
        #expect(state.messages.count == 10_000 && state.dropped == 0)
    }

    @Test func theAutoUnsubscribeCountEndsTheSequenceAndCountsDroppedMessages() {
        var state = NATSSubscriptionState(limits: NATSPendingLimits(messages: 1, bytes: -1))
        let maximum8 = state.setMaximum(3)
        #expect(maximum8 == (reached: false, wakeConsumer: false))
        #expect(state.remaining == 3)
        _ = state.deliver(Self.message("a"))
        _ = state.deliver(Self.message("dropped"))
        #expect(state.remaining == 1, "the server counts what it sent, dropped or not")
        let delivery9 = state.deliver(Self.message("c")).reachedMaximum
        #expect(delivery9)
        let delivery10 = state.deliver(Self.message("after the end"))
        #expect(delivery10 == .init(), "ignored")
        var batch: [NATSMessage] = []
        let taken11 = state.take(into: &batch)
        #expect(taken11 == .messages)
        let taken12 = state.take(into: &batch)
        #expect(taken12 == .end(nil))
        #expect(state.isConsumed)
    }

    @Test func aCountAlreadyReachedEndsAtOnce() {
        var state = NATSSubscriptionState(limits: NATSPendingLimits())
        _ = state.deliver(Self.message("a"))
        _ = state.deliver(Self.message("b"))
        let maximum13 = state.setMaximum(2).reached
        #expect(maximum13)
        #expect(state.remaining == 0)
    }

    @Test func theParkedConsumerIsWokenByADeliveryAnEndOrItsCancellation() {
        var state = NATSSubscriptionState(limits: NATSPendingLimits())
        let parks14 = state.consumerParks(cancelled: true)
        #expect(parks14 == false, "a cancelled task does not park")
        let parks15 = state.consumerParks(cancelled: false)
        #expect(parks15)
        let delivery16 = state.deliver(Self.message("a")).wakeConsumer
        #expect(delivery16)
        let delivery17 = state.deliver(Self.message("b")).wakeConsumer
        #expect(delivery17 == false, "woken once")
        let parks18 = state.consumerParks(cancelled: false)
        #expect(parks18 == false, "messages are waiting")
        var batch: [NATSMessage] = []
        _ = state.take(into: &batch)
        let parks19 = state.consumerParks(cancelled: false)
        #expect(parks19)
        let woken20 = state.consumerCancelled()
        #expect(woken20)
        let parks21 = state.consumerParks(cancelled: false)
        #expect(parks21)
        let woken22 = state.finish(.failed(NATSError(.connection, "lost")), discarding: false)
        #expect(woken22)
        let taken23 = state.take(into: &batch)
        #expect(taken23 == .end(NATSError(.connection, "lost")))
    }

    @Test func finishingKeepsOrDiscardsWhatWasNotTakenAndTheFirstEndCounts() {
        var state = NATSSubscriptionState(limits: NATSPendingLimits())
        _ = state.deliver(Self.message("kept"))
        _ = state.finish(.finished, discarding: false)
        _ = state.finish(.failed(NATSError(.closed, "later")), discarding: false)
        #expect(!state.isConsumed, "a drained subscription still hands over what came before")
        var batch: [NATSMessage] = []
        let taken24 = state.take(into: &batch)
        #expect(taken24 == .messages)
        let taken25 = state.take(into: &batch)
        #expect(taken25 == .end(nil))
        var discarded = NATSSubscriptionState(limits: NATSPendingLimits())
        _ = discarded.deliver(Self.message("dropped"))
        _ = discarded.finish(.finished, discarding: true)
        #expect(discarded.isConsumed && discarded.pendingBytes == 0)
    }

    @Test func oneTaskIteratesAtATime() {
        var state = NATSSubscriptionState(limits: NATSPendingLimits())
        let started26 = state.startIterating()
        #expect(started26)
        let started27 = state.startIterating()
        #expect(started27 == false)
        state.stopIterating()
        let started28 = state.startIterating()
        #expect(started28)
    }
}

extension NATSSubscriptionState {
    var pendingBytes: Int { bytes }
}
