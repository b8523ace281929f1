/// Removal of credentials from URLs before they reach a message or a log.
public enum Redaction {
    /// `scheme://user:password@host/…` with the password replaced by `***`; everything else is kept.
    /// With `bareUserInfoIsSecret`, user-info without a colon is masked whole — Redis reads
    /// `redis://secret@host` as a password alone.
    public static func url(_ text: String, bareUserInfoIsSecret: Bool = false) -> String {
        guard let schemeEnd = text.firstRange(of: "://") else { return text }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return text }
        if let colon = rest[..<at].firstIndex(of: ":") {
            return String(text[..<colon]) + ":***" + String(text[at...])
        }
        return bareUserInfoIsSecret ? String(text[..<schemeEnd.upperBound]) + "***" + String(text[at...]) : text
    }
}
