/// A type a command-line option or argument can hold: how to read it from its text, the values to list in help
/// and in errors, and how a default is shown.
public protocol CommandLineValue: Sendable {
    /// The value `text` stands for, or nil when it is not one (the parser then names the option and the
    /// expected form).
    init?(commandLineValue text: String)

    /// Every value accepted, for help (`(values: a, b)`) and errors; empty when any text of the right form is.
    static var allValueStrings: [String] { get }

    /// How help shows this value as a default: `(default: …)`.
    var defaultValueDescription: String { get }
}

extension CommandLineValue {
    public static var allValueStrings: [String] { [] }
}

/// Enums by raw value: `--bias pull-up`.
extension CommandLineValue where Self: RawRepresentable, Self.RawValue == String {
    public init?(commandLineValue text: String) { self.init(rawValue: text) }
    public var defaultValueDescription: String { self.rawValue }
}

extension CommandLineValue where Self: RawRepresentable & CaseIterable, Self.RawValue == String {
    public static var allValueStrings: [String] { Self.allCases.map(\.rawValue) }
}

extension String: CommandLineValue {
    public init?(commandLineValue text: String) { self = text }
    public var defaultValueDescription: String { self }
}

extension Int: CommandLineValue {
    public init?(commandLineValue text: String) {
        guard let value = Int(text) else { return nil }
        self = value
    }

    public var defaultValueDescription: String { String(self) }
}

extension Double: CommandLineValue {
    public init?(commandLineValue text: String) {
        guard let value = Double(text) else { return nil }
        self = value
    }

    public var defaultValueDescription: String { String(self) }
}
