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

@Suite("Redis URLs")
struct RedisURLTests {
    @Test func fullURL() throws {
        let configuration = try RedisConfiguration(url: "redis://app:p%40ss@cache.local:6380/2?timeout=1.5&name=worker")
        #expect(configuration.host == "cache.local" && configuration.port == 6380)
        #expect(configuration.user == "app" && configuration.password == "p@ss")
        #expect(configuration.database == 2 && configuration.clientName == "worker")
        #expect(configuration.commandTimeout == .milliseconds(1500))
        #expect(configuration.tls == nil)
    }

    @Test func passwordOnlyIPv6AndDefaults() throws {
        let configuration = try RedisConfiguration(url: "redis://:secret@[::1]:7000")
        #expect(configuration.host == "::1" && configuration.port == 7000 && configuration.user == nil && configuration.password == "secret")
        let plain = try RedisConfiguration(url: "redis://localhost")
        #expect(plain.port == 6379 && plain.database == 0 && plain.password == nil)
        #expect(try RedisConfiguration(url: "rediss://h:6390/0").tls != nil)
    }

    @Test func badURLsNeverShowThePassword() {
        for url in ["http://:hunter2@h", "redis://:hunter2@h:99999", "redis://:hunter2@h/x", "redis://:hunter2@h?bogus=1"] {
            let error = #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
            #expect(error?.kind == .usage)
            #expect(error?.message.contains("hunter2") == false, "\(String(describing: error))")
        }
    }
}
