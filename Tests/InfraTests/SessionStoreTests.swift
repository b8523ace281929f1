import Foundation
import Infra
import RESP
import Settings
import TestSupport
import Testing

struct TestSession: Codable, Sendable, Equatable {
    var user: Int
    var language: String
}

@Suite("Session store (live Redis)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.redis.isAvailable))
struct SessionStoreTests {
    @Test func sessionsLiveForTheirTTLAndTouchRenewsIt() async throws {
        let client = try RedisClient(url: try LiveServer.require(LiveServer.redis.rawValue))
        defer { client.close() }
        let store = SessionStore<TestSession>(client: client, prefix: LiveServer.uniqueName("session", separator: ":") + ":", timeToLive: .milliseconds(400))
        try await store.put("42", TestSession(user: 42, language: "ru"))
        #expect(try await store.get("42") == TestSession(user: 42, language: "ru"))
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await store.touch("42"))
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await store.get("42") != nil, "touch renewed the TTL")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await store.get("42") == nil)
        #expect(try await store.touch("42") == false)
        try await client.set(store.prefix + "bad", "not json")
        let error = await #expect(throws: RedisError.self) { try await store.get("bad") }
        #expect(error?.message.contains(store.prefix + "bad") == true)
        #expect(try await store.delete("bad"))
    }

    @Test func settingsChooseThePrefixAndTimeToLive() throws {
        var settings = Settings()
        settings.redis.sessionPrefix = "bot:session:"
        settings.redis.sessionTTLSeconds = 90
        let store = SessionStore<TestSession>(client: try RedisClient(url: "redis://127.0.0.1:1"), settings: settings)
        #expect(store.prefix == "bot:session:")
        #expect(store.timeToLive == .seconds(90))
    }
}
