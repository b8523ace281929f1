import Testing
import Transport
@testable import RESP

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
