/// What the parser read for one command: the texts given for each option and positional argument, and the flags
/// given. Every text has already been checked against its type, so reading it back as that type succeeds.
public struct ParsedValues: Sendable, Equatable {
    /// Option and positional texts by key, in the order given.
    var texts: [String: [String]] = [:]
    /// Flags given, by long name: true for `--name`, false for `--no-name`; the last one counts.
    var flags: [String: Bool] = [:]

    public init() {}

    /// The option's last value, else its default.
    public subscript<Value>(_ option: Option<Value>) -> Value? {
        self.texts[option.name]?.last.flatMap(Value.init(commandLineValue:)) ?? option.defaultValue
    }

    /// The option's value or default; throws for an option with neither (the parser reports a missing required
    /// option before a command sees its values).
    public func value<Value>(_ option: Option<Value>) throws(CommandLineError) -> Value {
        guard let value = self[option] else { throw .missing(option.spec) }
        return value
    }

    /// Every value a repeatable option was given, in order (empty when none).
    public func all<Value>(_ option: Option<Value>) -> [Value] {
        (self.texts[option.name] ?? []).compactMap(Value.init(commandLineValue:))
    }

    /// The flag as given (the last of `--name` and `--no-name`), else its default.
    public subscript(_ flag: Flag) -> Bool? {
        self.flags[flag.name] ?? flag.defaultValue
    }

    /// The flag as given, else its default, else false.
    public func isSet(_ flag: Flag) -> Bool {
        self[flag] ?? false
    }

    /// A single positional argument's value, nil when an optional one was not given.
    public subscript<Value>(_ argument: Argument<Value>) -> Value? {
        self.texts[argument.name]?.first.flatMap(Value.init(commandLineValue:))
    }

    /// A required positional argument's value.
    public func value<Value>(_ argument: Argument<Value>) throws(CommandLineError) -> Value {
        guard let value = self[argument] else { throw .missing(argument.spec) }
        return value
    }

    /// Every value of a repeating positional argument.
    public func all<Value>(_ argument: Argument<Value>) -> [Value] {
        (self.texts[argument.name] ?? []).compactMap(Value.init(commandLineValue:))
    }

    public static func == (lhs: ParsedValues, rhs: ParsedValues) -> Bool {
        lhs.texts == rhs.texts && lhs.flags == rhs.flags
    }
}
