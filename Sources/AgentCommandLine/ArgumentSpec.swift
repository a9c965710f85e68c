/// One option, flag or positional argument of a command, without its Swift type: what the parser matches, what
/// help shows and what errors name. Made by `Option`, `Flag` and `Argument`, which also read the parsed value back.
public struct ArgumentSpec: Sendable {
    public enum Kind: Sendable, Equatable {
        /// `--name VALUE` or `--name=VALUE`, optionally `-n VALUE`.
        case option(repeatable: Bool)
        /// `--name`; with an inversion, `--no-name` too.
        case flag(inversion: Bool)
        /// A value by position.
        case positional(Arity)
    }

    /// How many values a positional argument takes.
    public enum Arity: Sendable, Equatable {
        case required, optional
        /// Every remaining value; `atLeastOne` makes it required.
        case repeating(atLeastOne: Bool)
    }

    public var kind: Kind
    /// The long name without dashes (`log-level`), or a positional argument's value name (`lines`).
    public var name: String
    public var shortName: Character?
    public var help: String
    /// The default shown in help (`(default: info)`), nil when there is none to show.
    public var defaultDescription: String?
    /// Every accepted value, listed in help and in errors; empty when any text of the right form is accepted.
    public var allValues: [String]
    /// An option that must be given (no default, not optional).
    public var isRequired: Bool
    /// Whether `text` is a value of the argument's type.
    public var accepts: @Sendable (String) -> Bool

    /// The name that leads the values dictionary: options and flags by long name, positionals by value name.
    var key: String { self.name }

    var isPositional: Bool {
        if case .positional = self.kind { return true }
        return false
    }

    var isFlag: Bool {
        if case .flag = self.kind { return true }
        return false
    }

    /// `--name`, and `--no-name` for a flag with an inversion.
    var longNames: [String] {
        switch self.kind {
        case .option: return ["--" + self.name]
        case .flag(let inversion): return inversion ? ["--" + self.name, "--no-" + self.name] : ["--" + self.name]
        case .positional: return []
        }
    }

    /// `--name <name>` for an option, `--name` for a flag, `<name>` for a positional argument: how errors and
    /// the `Help:` line name it.
    var synopsis: String {
        switch self.kind {
        case .option: return "--\(self.name) <\(self.name)>"
        case .flag: return "--\(self.name)"
        case .positional: return "<\(self.name)>"
        }
    }
}

/// `--name VALUE`: an option holding a `Value`.
public struct Option<Value: CommandLineValue>: Sendable {
    public let name: String
    public let shortName: Character?
    public let help: String
    public let defaultValue: Value?
    public let isRequired: Bool
    public let isRepeatable: Bool

    /// - Parameters:
    ///   - name: the long name without dashes (`log-level`).
    ///   - defaultValue: used when the option is not given, and shown in help.
    ///   - isRequired: the option must be given (only meaningful without a default).
    ///   - isRepeatable: every occurrence is kept (`values.all(option)`); otherwise the last one counts.
    public init(
        _ name: String, short shortName: Character? = nil, help: String, default defaultValue: Value? = nil,
        isRequired: Bool = false, isRepeatable: Bool = false
    ) {
        self.name = name
        self.shortName = shortName
        self.help = help
        self.defaultValue = defaultValue
        self.isRequired = isRequired && defaultValue == nil
        self.isRepeatable = isRepeatable
    }

    public var spec: ArgumentSpec {
        ArgumentSpec(
            kind: .option(repeatable: self.isRepeatable), name: self.name, shortName: self.shortName, help: self.help,
            defaultDescription: self.defaultValue?.defaultValueDescription, allValues: Value.allValueStrings,
            isRequired: self.isRequired, accepts: { Value(commandLineValue: $0) != nil })
    }
}

/// `--name`: a flag, optionally with its inversion `--no-name`. The last one given counts.
public struct Flag: Sendable {
    public let name: String
    public let shortName: Character?
    public let help: String
    public let hasInversion: Bool
    /// The value when neither form is given; nil lets the command tell "not given" apart.
    public let defaultValue: Bool?

    public init(
        _ name: String, short shortName: Character? = nil, help: String, inversion hasInversion: Bool = false,
        default defaultValue: Bool? = false
    ) {
        self.name = name
        self.shortName = shortName
        self.help = help
        self.hasInversion = hasInversion
        self.defaultValue = defaultValue
    }

    public var spec: ArgumentSpec {
        // Help shows an inversion's default as the form that is in force: `(default: --kernel-debounce)`.
        let shown: String? =
            if self.hasInversion, let value = self.defaultValue { value ? "--" + self.name : "--no-" + self.name } else { nil }
        return ArgumentSpec(
            kind: .flag(inversion: self.hasInversion), name: self.name, shortName: self.shortName, help: self.help,
            defaultDescription: shown, allValues: [], isRequired: false, accepts: { _ in true })
    }
}

/// A positional argument holding `Value`s.
public struct Argument<Value: CommandLineValue>: Sendable {
    public let name: String
    public let help: String
    public let arity: ArgumentSpec.Arity

    /// - Parameter name: the value name help and errors show as `<name>`.
    public init(_ name: String, help: String, arity: ArgumentSpec.Arity = .required) {
        self.name = name
        self.help = help
        self.arity = arity
    }

    public var spec: ArgumentSpec {
        ArgumentSpec(
            kind: .positional(self.arity), name: self.name, shortName: nil, help: self.help, defaultDescription: nil,
            allValues: Value.allValueStrings, isRequired: false, accepts: { Value(commandLineValue: $0) != nil })
    }
}
