import Testing
import Transport
@testable import RESP

@Suite("Reply router (state machine)")
struct ReplyRouterTests {
    @Test func repliesGoToRequestsInOrderAndPushesNever() {
        var router = ReplyRouter()
        router.enqueue(1, replies: 1)
        router.enqueue(2, replies: 2)
        #expect(router.received(.push([bulk("invalidate")])) == .push(.push([bulk("invalidate")])))
        #expect(router.received(simple("OK")) == .complete(1, [simple("OK")]))
        #expect(router.received(.integer(1)) == .waitForMore)
        #expect(router.received(.push([])) == .push(.push([])))
        #expect(router.received(.integer(2)) == .complete(2, [.integer(1), .integer(2)]))
        #expect(router.received(simple("extra")) == .unsolicited(simple("extra")))
    }

    @Test func aRequestKeepingOnlyErrorsCountsSkippedRepliesAndKeepsErrorsWithTheirIndex() {
        var router = ReplyRouter()
        router.enqueue(1, replies: 5, keepingOnlyErrors: true)
        router.enqueue(2, replies: 1)
        #expect(router.skippableReplies == 5)
        #expect(router.skipped(2) == .waitForMore)
        #expect(router.skippableReplies == 3)
        #expect(router.received(.push([])) == .push(.push([])))
        #expect(router.received(.simpleError(ByteBuffer(string: "ERR third"))) == .waitForMore)
        #expect(router.received(.integer(7)) == .waitForMore)  // built anyway: counted, not kept
        #expect(router.skippableReplies == 1)
        #expect(router.skipped(2) == .waitForMore)  // more than the request expects: refused
        let errorEntry = RESPValue.array([.integer(2), .simpleError(ByteBuffer(string: "ERR third"))])
        #expect(router.skipped(1) == .complete(1, [errorEntry]))
        #expect(router.skippableReplies == 0)  // the next request keeps its values
        #expect(router.received(simple("OK")) == .complete(2, [simple("OK")]))

        // An abandoned request's replies may be skipped too; what it had is not reported.
        router.enqueue(3, replies: 3)
        router.enqueue(4, replies: 2, keepingOnlyErrors: true)
        router.abandon(3)
        #expect(router.skippableReplies == 3)
        #expect(router.skipped(3) == .dropped)
        #expect(router.received(.integer(1)) == .waitForMore)
        let failed = router.failAllWithReplies()
        #expect(failed.map(\.id) == [4])
        #expect(failed.first?.answered == 1)
        #expect(failed.first?.replies == [])
    }

    @Test func abandonedRequestsKeepTheirSlot() {
        var router = ReplyRouter()
        router.enqueue(1, replies: 1)
        router.enqueue(2, replies: 1)
        let abandoned = router.abandon(1)
        #expect(abandoned)
        #expect(router.received(simple("for 1")) == .dropped)
        #expect(router.received(simple("for 2")) == .complete(2, [simple("for 2")]))
        let unknown = router.abandon(3)
        #expect(!unknown)
    }

    @Test func failAllReturnsWaitingRequests() {
        var router = ReplyRouter()
        for id in 1...3 { router.enqueue(UInt64(id), replies: 1) }
        router.abandon(2)
        let failed = router.failAll()
        #expect(failed == [1, 3])
        #expect(router.pendingCount == 0)
    }

    @Test func longRunsCompactTheQueue() {
        var router = ReplyRouter()
        for id in 1...10_000 {
            router.enqueue(UInt64(id), replies: 1)
            #expect(router.received(.integer(Int64(id))) == .complete(UInt64(id), [.integer(Int64(id))]))
        }
        #expect(router.pendingCount == 0)
    }
}
