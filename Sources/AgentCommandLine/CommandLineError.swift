/// Why the command line could not be read, with the words a person needs to fix it.
public enum CommandLineError: Error, Sendable, Equatable {
    /// `--confg`: not an option of the command; `suggestion` is the closest one (`--config`), if any is close.
    case unknownOption(String, suggestion: String?)
    /// Values the command has no place for (or, for a command with subcommands, not a subcommand's name).
    case unexpectedArguments([String], suggestion: String?)
    /// `--config` at the end, or followed by another option.
    case missingValue(synopsis: String, help: String)
    /// A value that is not of the argument's type: `--readings abc`.
    case invalidValue(String, synopsis: String, help: String, allowed: [String])
    /// A required argument or option that was not given.
    case missingArgument(synopsis: String, help: String)
    /// `--json=true`: a flag takes no value.
    case flagTakesNoValue(String, value: String)
    /// A command's own check failed (`ValidationError`).
    case validation(String)

    /// A required argument or option that was not given, named as usage names it (`<lines> ...`).
    static func missing(_ spec: ArgumentSpec) -> CommandLineError {
        var synopsis = spec.synopsis
        if case .positional(.repeating) = spec.kind { synopsis += " ..." }
        return .missingArgument(synopsis: synopsis, help: spec.help)
    }

    /// The error line's text (after `Error: `).
    public var message: String {
        switch self {
        case .unknownOption(let name, let suggestion):
            return "Unknown option '\(name)'" + (suggestion.map { ". Did you mean '\($0)'?" } ?? "")
        case .unexpectedArguments(let values, let suggestion):
            if values.count == 1 {
                return "Unexpected argument '\(values[0])'" + (suggestion.map { ". Did you mean '\($0)'?" } ?? "")
            }
            return "\(values.count) unexpected arguments: '\(values.joined(separator: "', '"))'"
        case .missingValue(let synopsis, _):
            return "Missing value for '\(synopsis)'"
        case .invalidValue(let value, let synopsis, _, let allowed):
            return "The value '\(value)' is invalid for '\(synopsis)'" + Self.listing(allowed)
        case .missingArgument(let synopsis, _):
            return "Missing expected argument '\(synopsis)'"
        case .flagTakesNoValue(let name, let value):
            return "The option '\(name)' does not take any value, but '\(value)' was specified."
        case .validation(let message):
            return message
        }
    }

    /// The `Help:` line that names the argument and what it is for, when the error is about one argument.
    public var helpLine: String? {
        switch self {
        case .missingValue(let synopsis, let help), .invalidValue(_, let synopsis, let help, _):
            return help.isEmpty ? nil : "\(synopsis)  \(help)"
        case .missingArgument(let synopsis, let help):
            // The line names the argument without the repetition mark: `<lines>  Line names…`.
            let name = synopsis.hasSuffix(" ...") ? String(synopsis.dropLast(4)) : synopsis
            return help.isEmpty ? nil : "\(name)  \(help)"
        default:
            return nil
        }
    }

    /// `. Please provide one of 'a', 'b' or 'c'.`, or a bulleted list for six values or more.
    static func listing(_ allowed: [String]) -> String {
        guard !allowed.isEmpty else { return "" }
        if allowed.count >= 6 {
            return ". Please provide one of the following:\n" + allowed.map { "  - \($0)" }.joined(separator: "\n")
        }
        let quoted = allowed.map { "'\($0)'" }
        let list = quoted.count <= 2
            ? quoted.joined(separator: " and ")
            : quoted.dropLast().joined(separator: ", ") + " or " + (quoted.last ?? "")
        return ". Please provide one of \(list)."
    }
}

/// A command line that could not be read: the error, and the commands it got through (whose usage is shown).
public struct CommandLineFailure: Error, Sendable {
    public var error: CommandLineError
    public var path: [CommandNode]

    public init(_ error: CommandLineError, path: [CommandNode]) {
        self.error = error
        self.path = path
    }
}
