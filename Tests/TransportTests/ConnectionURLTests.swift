import Testing
import Transport

@Suite("Connection URLs")
struct ConnectionURLTests {
    @Test func partsAreSplitAndPercentDecoded() throws {
        let url = try ConnectionURL(parsing: "Scheme://us%40er:p%3Aw@h1:1,[::1]:2,h3/a%2Fb?k=v%26w&x=")
        #expect(url.scheme == "scheme")
        #expect(url.user == "us@er")
        #expect(url.password == "p:w")
        #expect(url.hosts == [.init(host: "h1", port: 1), .init(host: "::1", port: 2), .init(host: "h3", port: nil)])
        #expect(url.path == "a/b")
        #expect(url.query.map(\.key) == ["k", "x"])
        #expect(url.query.map(\.value) == ["v&w", ""])
        let bare = try ConnectionURL(parsing: "redis://secret@host")
        #expect(bare.user == "secret" && bare.password == nil)
    }

    @Test func malformedURLsAreRefusedWithoutQuotingTheUserInfo() {
        for text in ["no-scheme", "x://u:pw@h:0", "x://u:pw@h:70000", "x://u:pw@[::1", "x://u:pw@h?novalue", "x://u:p%zzw@h", "x://u:p%ffw@h"] {
            do {
                _ = try ConnectionURL(parsing: text)
                Issue.record("\(text) parsed")
            } catch {
                #expect(!error.description.contains("pw"), "\(error)")
            }
        }
    }
}
