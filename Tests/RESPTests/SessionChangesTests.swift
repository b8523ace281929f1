import Testing

@testable import RESP

@Suite("Redis session changes")
struct RedisSessionChangesTests {
    @Test func commandNamesMarkWhatAResetMustUndoInAnyCase() {
        var changes = RedisSessionChanges()
        for command: [RESPArgument] in [["SET", "k", "v"], ["GET", "k"], ["select"], ["CLIENT", "SETNAME", "x"], ["SCAN", "0"], ["EXECUTE"]] {
            changes.record(command)
        }
        // "select" alone (no index) still selects nothing the server accepts, but it is counted.
        #expect(changes == [.database])
        changes = []
        changes.record(["multi"])
        changes.record(["WATCH", "k"])
        #expect(changes == [.transaction, .watching])
        changes.record(["Exec"])
        #expect(changes.isEmpty)
        changes.record(["client", "tracking", "on"])
        #expect(changes == [.clientSettings])
        changes.record(["CLIENT", "REPLY", "OFF"])
        changes.record(["READONLY"])
        #expect(changes.contains(.unrecoverable))
    }
}
