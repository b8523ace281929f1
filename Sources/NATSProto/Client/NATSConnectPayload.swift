import Foundation

/// The body of CONNECT.
struct NATSConnectPayload: Encodable {
    var verbose = false
    var pedantic = false
    var tlsRequired: Bool
    var name: String?
    var lang = "swift"
    var version = "1.0.0"
    var `protocol` = 1
    var echo: Bool
    var headers = true
    var noResponders = true
    var user: String?
    var pass: String?
    var authToken: String?
    var nkey: String?
    var sig: String?
    var jwt: String?

    enum CodingKeys: String, CodingKey {
        case verbose, pedantic, tlsRequired = "tls_required", name, lang, version, `protocol`, echo, headers
        case noResponders = "no_responders", user, pass, authToken = "auth_token", nkey, sig, jwt
    }

    func json() throws(NATSError) -> String {
        do {
            let data = try JSONEncoder().encode(self)
            return String(decoding: data, as: UTF8.self)
        } catch {
            throw NATSError(.usage, "CONNECT could not be encoded: \(error)")
        }
    }
}
