import Testing

@testable import PGWire

@Suite("PostgreSQL session changes")
struct SessionChangesTests {
    @Test func commandTagsMarkWhatAResetMustUndo() {
        var changes = PostgresSessionChanges()
        for tag in ["SELECT 1", "INSERT 0 5", "BEGIN", "COMMIT", "UNLISTEN", "CLOSE CURSOR"] { changes.record(commandTag: tag) }
        #expect(changes.isEmpty, "ordinary statements change nothing")
        changes.record(commandTag: "LISTEN")
        changes.record(commandTag: "SET")
        changes.record(commandTag: "DECLARE CURSOR")
        #expect(changes == [.listening, .settings, .cursors])
        changes.record(commandTag: "PREPARE")
        #expect(changes.contains(.preparedStatements))
        changes.record(commandTag: "DISCARD ALL")
        #expect(changes.isEmpty)
    }
}
