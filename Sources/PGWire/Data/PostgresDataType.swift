/// A PostgreSQL data type, by OID. The built-in types' OIDs are fixed across server versions;
/// enums, domains and extension types get theirs at creation.
public struct PostgresDataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The type's OID (`pg_type.oid`).
    public let rawValue: UInt32

    /// Wraps an OID.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps an OID.
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// The type's name when it is a built-in this library knows, else `oid N`.
    public var description: String { Self.names[rawValue] ?? "oid \(rawValue)" }

    /// Whether this is one of the built-in types (or their arrays) this library knows by OID.
    public var isBuiltin: Bool { Self.names[rawValue] != nil }

    /// The element type when this is a known built-in array type.
    public var elementType: PostgresDataType? { Self.elementOfArray[rawValue].map { PostgresDataType(rawValue: $0) } }
    /// The array type whose elements are this type, when it is a known built-in.
    public var arrayType: PostgresDataType? { Self.arrayOfElement[rawValue].map { PostgresDataType(rawValue: $0) } }

    /// `bool` (OID 16).
    public static let bool = PostgresDataType(16)
    /// `bytea` (OID 17).
    public static let bytea = PostgresDataType(17)
    /// `char` (OID 18).
    public static let char = PostgresDataType(18)
    /// `name` (OID 19).
    public static let name = PostgresDataType(19)
    /// `int8` (OID 20).
    public static let int8 = PostgresDataType(20)
    /// `int2` (OID 21).
    public static let int2 = PostgresDataType(21)
    /// `int4` (OID 23).
    public static let int4 = PostgresDataType(23)
    /// `regproc` (OID 24).
    public static let regproc = PostgresDataType(24)
    /// `text` (OID 25).
    public static let text = PostgresDataType(25)
    /// `oid` (OID 26).
    public static let oid = PostgresDataType(26)
    /// `json` (OID 114).
    public static let json = PostgresDataType(114)
    /// `xml` (OID 142).
    public static let xml = PostgresDataType(142)
    /// `cidr` (OID 650).
    public static let cidr = PostgresDataType(650)
    /// `float4` (OID 700).
    public static let float4 = PostgresDataType(700)
    /// `float8` (OID 701).
    public static let float8 = PostgresDataType(701)
    /// `unknown` (OID 705).
    public static let unknown = PostgresDataType(705)
    /// `money` (OID 790).
    public static let money = PostgresDataType(790)
    /// `macaddr` (OID 829).
    public static let macaddr = PostgresDataType(829)
    /// `inet` (OID 869).
    public static let inet = PostgresDataType(869)
    /// `bpchar` (OID 1042).
    public static let bpchar = PostgresDataType(1042)
    /// `varchar` (OID 1043).
    public static let varchar = PostgresDataType(1043)
    /// `date` (OID 1082).
    public static let date = PostgresDataType(1082)
    /// `time` (OID 1083).
    public static let time = PostgresDataType(1083)
    /// `timestamp` (OID 1114).
    public static let timestamp = PostgresDataType(1114)
    /// `timestamptz` (OID 1184).
    public static let timestamptz = PostgresDataType(1184)
    /// `interval` (OID 1186).
    public static let interval = PostgresDataType(1186)
    /// `timetz` (OID 1266).
    public static let timetz = PostgresDataType(1266)
    /// `numeric` (OID 1700).
    public static let numeric = PostgresDataType(1700)
    /// `record` (OID 2249).
    public static let record = PostgresDataType(2249)
    /// `void` (OID 2278).
    public static let void = PostgresDataType(2278)
    /// `uuid` (OID 2950).
    public static let uuid = PostgresDataType(2950)
    /// `jsonb` (OID 3802).
    public static let jsonb = PostgresDataType(3802)
    /// `int4range` (OID 3904).
    public static let int4range = PostgresDataType(3904)
    /// `numrange` (OID 3906).
    public static let numrange = PostgresDataType(3906)
    /// `tsrange` (OID 3908).
    public static let tsrange = PostgresDataType(3908)
    /// `tstzrange` (OID 3910).
    public static let tstzrange = PostgresDataType(3910)
    /// `daterange` (OID 3912).
    public static let daterange = PostgresDataType(3912)
    /// `int8range` (OID 3926).
    public static let int8range = PostgresDataType(3926)

    /// Each built-in above with its name and its array type's OID (0: none), each OID written once;
    /// the test suite checks them against `pg_type`.
    static let builtins: [(type: PostgresDataType, name: String, array: UInt32)] = [
        (.bool, "bool", 1000), (.bytea, "bytea", 1001), (.char, "char", 1002), (.name, "name", 1003),
        (.int8, "int8", 1016), (.int2, "int2", 1005), (.int4, "int4", 1007), (.regproc, "regproc", 1008),
        (.text, "text", 1009), (.oid, "oid", 1028), (.json, "json", 199), (.xml, "xml", 143), (.cidr, "cidr", 651),
        (.float4, "float4", 1021), (.float8, "float8", 1022), (.unknown, "unknown", 0), (.money, "money", 791),
        (.macaddr, "macaddr", 1040), (.inet, "inet", 1041), (.bpchar, "bpchar", 1014), (.varchar, "varchar", 1015),
        (.date, "date", 1182), (.time, "time", 1183), (.timestamp, "timestamp", 1115),
        (.timestamptz, "timestamptz", 1185), (.interval, "interval", 1187), (.timetz, "timetz", 1270),
        (.numeric, "numeric", 1231), (.record, "record", 2287), (.void, "void", 0), (.uuid, "uuid", 2951),
        (.jsonb, "jsonb", 3807), (.int4range, "int4range", 3905), (.numrange, "numrange", 3907),
        (.tsrange, "tsrange", 3909), (.tstzrange, "tstzrange", 3911), (.daterange, "daterange", 3913),
        (.int8range, "int8range", 3927),
    ]

    private static let names: [UInt32: String] = {
        var names: [UInt32: String] = [:]
        for entry in builtins {
            names[entry.type.rawValue] = entry.name
            if entry.array != 0 { names[entry.array] = entry.name + "[]" }
        }
        return names
    }()
    private static let elementOfArray: [UInt32: UInt32] = Dictionary(
        uniqueKeysWithValues: builtins.filter { $0.array != 0 }.map { ($0.array, $0.type.rawValue) })
    private static let arrayOfElement: [UInt32: UInt32] = Dictionary(
        uniqueKeysWithValues: builtins.filter { $0.array != 0 }.map { ($0.type.rawValue, $0.array) })
}
