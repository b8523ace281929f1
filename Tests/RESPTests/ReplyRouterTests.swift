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
